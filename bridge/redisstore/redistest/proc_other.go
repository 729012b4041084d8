//go:build unix && !linux

package redistest

import "syscall"

// setParentDeathSignal: only Linux has a parent-death signal; elsewhere a
// server may outlive a test binary that crashed.
func setParentDeathSignal(*syscall.SysProcAttr) {}

// groupRunning reports whether the process group pgid has a member. A
// zombie counts as one here: without /proc its state is not at hand.
func groupRunning(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}
