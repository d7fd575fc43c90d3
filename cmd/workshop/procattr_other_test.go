//go:build !linux

package main

import "syscall"

// procAttr: only Linux can tie a child's life to its parent's; elsewhere
// t.Cleanup alone stops the instances.
func procAttr() *syscall.SysProcAttr { return nil }
