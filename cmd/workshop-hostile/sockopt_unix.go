//go:build unix

package main

import (
	"syscall"
)

// setRcvBuf answers a dialer Control that sets the socket's receive
// buffer, so a client that does not read fills it quickly.
func setRcvBuf(n int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// terminate sends SIGTERM to a process.
func terminate(pid int) error { return syscall.Kill(pid, syscall.SIGTERM) }
