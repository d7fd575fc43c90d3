package main

import "syscall"

// procAttr kills a started server with the test process, so a test that
// crashes or times out leaves no server behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
