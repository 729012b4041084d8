//go:build unix && !linux

package redistest

import "syscall"

// setParentDeathSignal: only Linux has a parent-death signal; elsewhere a
// server may outlive a test binary that crashed.
func setParentDeathSignal(*syscall.SysProcAttr) {}
