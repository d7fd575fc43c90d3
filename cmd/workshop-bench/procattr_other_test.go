//go:build !linux

package main

import "syscall"

// procAttr is empty where the parent-death signal does not exist.
func procAttr() *syscall.SysProcAttr { return nil }
