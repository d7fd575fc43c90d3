//go:build !linux

package hubtest

import "syscall"

func pdeathsig() *syscall.SysProcAttr { return nil }
