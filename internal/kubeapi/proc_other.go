//go:build !linux

package kubeapi

import "syscall"

// dieWithParent: only Linux can tie a child's life to its parent's; elsewhere Stop must run.
func dieWithParent() *syscall.SysProcAttr { return nil }
