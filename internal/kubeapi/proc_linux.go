package kubeapi

import "syscall"

// dieWithParent makes the kernel kill a kube-apiserver whose parent died without stopping it.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
