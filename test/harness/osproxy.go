package harness

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// OpenStackProxy puts reverse proxies in front of Keystone and of every service its catalog names,
// rewriting the catalog in Keystone's token responses so that a client that authenticates through
// AuthURL reaches every service through a proxy too. Hold then stops a chosen request's response
// on its way back: the request reached OpenStack and took effect, but its caller never learns of it
// — the window between a create call and recording the created object's ID.
type OpenStackProxy struct {
	// AuthURL is Keystone's URL through the proxy.
	AuthURL string

	mu       sync.Mutex
	byPort   map[string]string // upstream port → proxy port
	servers  []*http.Server
	hold     func(*http.Request) bool
	reached  chan string
	catalogs *regexp.Regexp
}

// NewOpenStackProxy proxies the Keystone at authURL ("http://127.0.0.1:5000/v3").
func NewOpenStackProxy(authURL string) (*OpenStackProxy, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return nil, err
	}
	p := &OpenStackProxy{byPort: map[string]string{}, catalogs: regexp.MustCompile(`http://127\.0\.0\.1:(\d+)`)}
	port, err := p.proxy(u.Port())
	if err != nil {
		return nil, err
	}
	p.AuthURL = "http://127.0.0.1:" + port + u.Path
	return p, nil
}

// proxy returns the port of the proxy in front of an upstream port on 127.0.0.1, starting it the
// first time.
func (p *OpenStackProxy) proxy(upstream string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if port, ok := p.byPort[upstream]; ok {
		return port, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	target := &url.URL{Scheme: "http", Host: "127.0.0.1:" + upstream}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = p.modify
	srv := &http.Server{Handler: rp}
	go func() { _ = srv.Serve(ln) }()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	p.byPort[upstream] = port
	p.servers = append(p.servers, srv)
	return port, nil
}

func (p *OpenStackProxy) modify(resp *http.Response) error {
	req := resp.Request
	if strings.HasSuffix(req.URL.Path, "/auth/tokens") && req.Method == http.MethodPost {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var rerr error
		body = p.catalogs.ReplaceAllFunc(body, func(m []byte) []byte {
			port, err := p.proxy(string(p.catalogs.FindSubmatch(m)[1]))
			if err != nil {
				rerr = err
				return m
			}
			return []byte("http://127.0.0.1:" + port)
		})
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return rerr
	}
	p.mu.Lock()
	hold, reached := p.hold, p.reached
	if hold != nil && hold(req) {
		p.hold = nil
	} else {
		hold = nil
	}
	p.mu.Unlock()
	if hold != nil {
		reached <- fmt.Sprintf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
		// Keep the response until the caller is gone.
		<-req.Context().Done()
		return req.Context().Err()
	}
	return nil
}

// Hold arms the proxy: the response to the next request for which match is true is kept from its
// caller, which waits until it gives up or dies. The returned channel says when that request has
// been answered by OpenStack (and so took effect).
func (p *OpenStackProxy) Hold(match func(*http.Request) bool) <-chan string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold, p.reached = match, make(chan string, 1)
	return p.reached
}

// Close stops every proxy.
func (p *OpenStackProxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.servers {
		s.Close()
	}
}
