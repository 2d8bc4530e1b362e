package api_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cheops-io/cheops/api"
)

// serve runs srv on 127.0.0.1 through api.ProblemListener, as cmd does, and returns its address.
func serve(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(api.ProblemListener(ln)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// closedWithin reads c until the server closes it, and reports whether that took at most d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

// The server cuts off slow clients: one trickling its body, one that never finishes its headers,
// one that says nothing. The timeouts are shortened on the very server cmd runs.
func TestServerCutsOffSlowClients(t *testing.T) {
	srv := api.NewHTTPServer(newAPI(t))
	if srv.ReadHeaderTimeout != api.ReadHeaderTimeout || srv.ReadTimeout != api.ReadTimeout ||
		srv.WriteTimeout != api.WriteTimeout || srv.IdleTimeout != api.IdleTimeout {
		t.Fatalf("timeouts %v %v %v %v", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
	for _, d := range []time.Duration{srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout} {
		if d <= 0 || d > 2*time.Minute {
			t.Fatalf("a timeout of %v", d)
		}
	}
	const short = time.Second
	srv.ReadHeaderTimeout, srv.ReadTimeout, srv.IdleTimeout = short/2, short, short
	addr := serve(t, srv)

	const clients = 20
	var wg sync.WaitGroup
	errs := make(chan error, 3*clients)
	for i := range clients {
		for _, kind := range []string{"slow body", "slow headers", "silent"} {
			wg.Go(func() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				stop := make(chan struct{})
				defer close(stop)
				switch kind {
				case "slow body":
					fmt.Fprintf(c, "POST /v1/resources HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin-token\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
					go func() { // one byte every 100ms, for ever
						for {
							select {
							case <-stop:
								return
							case <-time.After(100 * time.Millisecond):
								if _, err := c.Write([]byte(" ")); err != nil {
									return
								}
							}
						}
					}()
				case "slow headers":
					fmt.Fprintf(c, "GET /v1/sites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin-token\r\n")
				}
				start := time.Now()
				if !closedWithin(c, short+3*time.Second) {
					errs <- fmt.Errorf("%s client %d: still open after %v", kind, i, time.Since(start).Round(time.Millisecond))
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// A slow body is told why, as a problem.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(short + 3*time.Second))
	fmt.Fprintf(c, "PUT /v1/sites/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin-token\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(body), `"field":"body"`) {
		t.Fatalf("slow body: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// Requests net/http refuses before any handler runs are problem+json naming what is at fault.
func TestMalformedHTTPIsAProblem(t *testing.T) {
	addr := serve(t, api.NewHTTPServer(newAPI(t)))
	for _, c := range []struct{ name, req, field string }{
		{"invalid URL escape", "GET /v1/resources/%zz HTTP/1.1\r\nHost: x\r\n\r\n", "request"},
		{"invalid query escape", "GET /v1/resources?limit=%zz HTTP/1.1\r\nHost: x\r\n\r\n", ""},
		{"no Host", "GET /v1/sites HTTP/1.1\r\n\r\n", "Host"},
		{"two Hosts", "GET /v1/sites HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "request"},
		{"invalid header name", "GET /v1/sites HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", "header"},
		{"bad Content-Length", "POST /v1/resources HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", "request"},
		{"unknown transfer coding", "POST /v1/resources HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding"},
		{"HTTP/2.0 text", "GET /v1/sites HTTP/2.0\r\nHost: x\r\n\r\n", "protocol"},
		{"not HTTP", "HELLO\r\n\r\n", "request"},
		{"headers too large", "GET /v1/sites HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 128<<10) + "\r\n\r\n", "header"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			go fmt.Fprint(conn, c.req)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode < 400 || resp.StatusCode == http.StatusOK {
				if c.field == "" {
					return // Go's server takes it; the handler decides
				}
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			var p api.Problem
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" || json.Unmarshal(body, &p) != nil ||
				p.Status != resp.StatusCode || p.Detail == "" || len(p.Errors) == 0 {
				t.Fatalf("%d %q: %s", resp.StatusCode, ct, body)
			}
			if c.field != "" && p.Errors[0].Field != c.field {
				t.Fatalf("field %q, want %q: %s", p.Errors[0].Field, c.field, body)
			}
		})
	}
}

// One client address may have MaxInFlightPerClient requests in flight; more are a 429 with
// Retry-After, other addresses are served meanwhile, and the client is served again once one of
// its requests is answered.
func TestRequestsInFlightAreCappedPerClient(t *testing.T) {
	const max = 3
	h := newAPIConfig(t, &recorder{}, func(c *api.Config) { c.MaxInFlightPerClient = max })
	addr := serve(t, api.NewHTTPServer(h))
	get := func(local string) (*http.Response, string) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		cl := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 30 * time.Second}
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/sites", nil)
		req.Header.Set("Authorization", "Bearer admin-token")
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	// max requests held in flight, each waiting for the rest of its body. (The deadlines below
	// bound waits for what must happen, on a machine that may be busy with other tests.)
	var held []net.Conn
	for range max {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "PUT /v1/sites/nowhere HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin-token\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{")
		held = append(held, c)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, body := get("127.0.0.1")
		if resp.StatusCode == http.StatusTooManyRequests {
			if resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(body, `"status":429`) {
				t.Fatalf("429 without Retry-After or problem: %v %s", resp.Header, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %d from one address: %d %s", max+1, resp.StatusCode, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp, body := get("127.0.0.2"); resp.StatusCode != http.StatusOK {
		t.Fatalf("another address: %d %s", resp.StatusCode, body)
	}
	// One held request completes (a 404: the site does not exist); the client is served again.
	fmt.Fprint(held[0], "}")
	if resp, err := http.ReadResponse(bufio.NewReader(held[0]), nil); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("held request: %v %v", resp, err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		resp, body := get("127.0.0.1")
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after one answer: %d %s", resp.StatusCode, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
