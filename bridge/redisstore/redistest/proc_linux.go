package redistest

import "syscall"

// setParentDeathSignal has the kernel kill the server if the test binary
// dies without running its cleanups (go test's timeout, a crash), so that
// no server outlives its test and keeps a port.
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGKILL
}
