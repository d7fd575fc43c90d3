//go:build !unix

package main

import (
	"errors"
	"syscall"
)

// setRcvBuf leaves the receive buffer alone where it cannot be set.
func setRcvBuf(int) func(network, address string, c syscall.RawConn) error { return nil }

// terminate is not available: SIGTERM is a Unix signal.
func terminate(int) error { return errors.New("SIGTERM needs a Unix system") }
