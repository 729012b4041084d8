//go:build unix

package redistest

import (
	"os"
	"syscall"
)

const termSignal = syscall.SIGTERM

// sysProcAttr puts the server in its own process group, so that killGroup
// reaches the children it forks and nothing else, and runs it as cred.
func sysProcAttr(cred *Credential) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if cred != nil {
		attr.Credential = &syscall.Credential{Uid: cred.UID, Gid: cred.GID}
	}
	setParentDeathSignal(attr)
	return attr
}

// killGroup sends SIGKILL to the process group led by p. The leader is ours
// and not yet reaped (or its group still has members), so the group id
// cannot belong to anybody else. ESRCH (already gone) is not an error here.
func killGroup(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
}

// killGroupID sends SIGKILL to the process group pgid, once its leader
// was reaped: only while groupRunning sees members, which keep the id
// theirs.
func killGroupID(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}
