package main

import (
	"strings"
	"testing"
)

func TestListenRefusesPlainHTTPOffThisMachine(t *testing.T) {
	for _, c := range []struct {
		cfg  listenConfig
		want string
	}{
		{listenConfig{Addr: "127.0.0.1:8080"}, ""},
		{listenConfig{Addr: "localhost:8080"}, ""},
		{listenConfig{Addr: "[::1]:8080"}, ""},
		{listenConfig{Addr: "0.0.0.0:8080"}, "refusing to serve"},
		{listenConfig{Addr: ":8080"}, "refusing to serve"},
		{listenConfig{Addr: "0.0.0.0:8080", InsecureHTTP: true}, ""},
		{listenConfig{Addr: "0.0.0.0:8080", TLSCert: "c.pem", TLSKey: "k.pem"}, ""},
		{listenConfig{Addr: "0.0.0.0:8080", TLSCert: "c.pem"}, "go together"},
		{listenConfig{Addr: "127.0.0.1:8080", ClientCA: "ca.pem"}, "needs --tls-cert"},
		{listenConfig{Addr: "8080"}, "not host:port"},
	} {
		err := c.cfg.validate()
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}
