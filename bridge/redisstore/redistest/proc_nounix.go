//go:build !unix

package redistest

import (
	"os"
	"syscall"
)

// Without process groups, only the leader is signalled: enough for
// redis-server, which the non-Unix builds are kept compiling for. There
// are no credentials to switch to either.
var termSignal = os.Kill

func sysProcAttr(*Credential) *syscall.SysProcAttr { return nil }

func killGroup(p *os.Process) { _ = p.Kill() }

// Without process groups, the leader was all there was.
func groupRunning(int) bool { return false }

func killGroupID(int) {}
