// Package freeport finds free TCP ports for listeners that must know their port before binding.
package freeport

import (
	"fmt"
	"net"
)

// On asks the kernel for a free TCP port on host.
func On(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Resolve turns host:0 into host:<free port> and leaves any other address as it is.
func Resolve(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port != "0" {
		return addr, nil
	}
	p, err := On(host)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, fmt.Sprint(p)), nil
}
