package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// The API server's timeouts: a client that is slow to send, or holds a connection doing nothing,
// is cut off instead of holding a connection and a goroutine for ever.
const (
	// ReadHeaderTimeout bounds the wait for a request's headers.
	ReadHeaderTimeout = 10 * time.Second
	// ReadTimeout bounds the whole request, body included: a 1 MiB body (the default BodyLimit)
	// needs 35 KiB/s to make it. A body still arriving then is a 408 and the connection is closed.
	ReadTimeout = 30 * time.Second
	// WriteTimeout bounds handling a request and writing its answer, from the end of its headers.
	WriteTimeout = 60 * time.Second
	// IdleTimeout closes a kept-alive connection that sends no next request.
	IdleTimeout = 120 * time.Second
)

// DefaultMaxInFlightPerClient is Config.MaxInFlightPerClient when it is left zero.
const DefaultMaxInFlightPerClient = 32

// NewHTTPServer returns the http.Server the API is served by, with the timeouts above. Serve it on
// ProblemListener(ln).
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
}

// ProblemListener makes net/http's own refusals of requests it cannot parse (a bad request line
// or header, an invalid URL escape, headers too large, a transfer coding it does not know) answer
// problem+json like every other refusal, instead of text/plain. They are written before any handler
// runs, straight to the connection, so they are rewritten there. It is for plain HTTP; under TLS,
// net/http needs the *tls.Conn itself.
func ProblemListener(ln net.Listener) net.Listener { return problemListener{ln} }

type problemListener struct{ net.Listener }

func (l problemListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &problemConn{Conn: c}, nil
}

// problemConn rewrites net/http's canned error responses. Those are one Write of a status line and
// exactly these headers, an order net/http's own response writer never produces (it sorts headers,
// and always adds Date).
type problemConn struct{ net.Conn }

const cannedErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

func (c *problemConn) Write(p []byte) (int, error) {
	const proto = "HTTP/1.1 "
	i := bytes.Index(p, []byte(cannedErrorHeaders))
	if !bytes.HasPrefix(p, []byte(proto)) || i < 0 || bytes.Contains(p[:i], []byte("\r\n")) {
		return c.Conn.Write(p)
	}
	line := string(p[len(proto):i]) // "400 Bad Request: missing required Host header"
	code, err := strconv.Atoi(line[:min(3, len(line))])
	if err != nil || code < 400 {
		return c.Conn.Write(p)
	}
	detail := strings.TrimSpace(line[min(3, len(line)):])
	field := "request"
	switch {
	case strings.Contains(detail, "Host"):
		field = "Host"
	case code == http.StatusRequestHeaderFieldsTooLarge || strings.Contains(detail, "header"):
		field = "header"
	case code == http.StatusNotImplemented:
		field = "Transfer-Encoding"
	case code == http.StatusHTTPVersionNotSupported:
		field = "protocol"
	}
	if detail == http.StatusText(code) {
		detail += ": the request is not well-formed HTTP (request line, URL or headers)"
	}
	body, _ := json.Marshal(problemAt(code, field, detail))
	resp := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
	if _, err := c.Conn.Write([]byte(resp)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite lets net/http half-close the connection after a refusal, as it does on a bare TCP
// connection.
func (c *problemConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// inFlight counts the requests each client address has in flight.
type inFlight struct {
	mu  sync.Mutex
	max int
	n   map[string]int
}

func (f *inFlight) acquire(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[addr] >= f.max {
		return false
	}
	f.n[addr]++
	return true
}

func (f *inFlight) release(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[addr]--; f.n[addr] <= 0 {
		delete(f.n, addr)
	}
}

// limitClients answers 429 to a client address with MaxInFlightPerClient requests in flight
// already. The address is the connection's, not X-Forwarded-For, which a client writes itself:
// behind a proxy every client shares the proxy's address, and the limit should be raised.
func (s *server) limitClients(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		addr, _, err := net.SplitHostPort(c.Request().RemoteAddr)
		if err != nil {
			addr = c.Request().RemoteAddr
		}
		if !s.inFlight.acquire(addr) {
			c.Response().Header().Set("Retry-After", "1")
			return problem(http.StatusTooManyRequests,
				fmt.Sprintf("more than %d requests in flight from %s; retry when one has been answered", s.inFlight.max, addr))
		}
		defer s.inFlight.release(addr)
		return next(c)
	}
}
