// Package client is a typed Go client of cheops' HTTP API (/v1): sites, resources, their actions
// and events, and the health routes. Every answer other than a 2xx is returned as a *Problem, the
// API's RFC 9457 problem document, so callers branch on the status and the field at fault with
// errors.As. The client holds no state beyond its configuration and is safe for concurrent use.
//
// It speaks HTTP only: it never reaches etcd, Temporal or a site, and it does not retry — a caller
// that wants retries decides which requests are safe to repeat (a POST with an idempotency key is).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client calls one cheops API. Create it with New.
type Client struct {
	base      *url.URL
	http      *http.Client
	token     string
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its requests with hc (for timeouts, TLS, proxies or tests)
// instead of http.DefaultClient.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.http = hc }
}

// WithBearerToken sends "Authorization: Bearer <token>" with every request.
func WithBearerToken(token string) Option {
	return func(c *Client) { c.token = token }
}

// WithUserAgent sets the User-Agent header (default "cheops-client").
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// New returns a client of the API at baseURL, e.g. "http://127.0.0.1:8080". The URL may carry a
// path prefix when the API sits behind a proxy ("https://gw.example/cheops").
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("cheops API address %q is not a URL such as http://host:port or https://host:port", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c := &Client{base: u, http: http.DefaultClient, userAgent: "cheops-client"}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL is the API address the client calls.
func (c *Client) BaseURL() string { return c.base.String() }

// request is one API call: what to send and where to decode the answer.
type request struct {
	method string
	// path is escaped already, relative to the base URL ("/v1/resources/web").
	path   string
	query  url.Values
	header http.Header
	// body is marshalled as JSON when not nil; contentType defaults to application/json.
	body        any
	contentType string
	// out receives the decoded JSON answer when not nil; a *[]byte receives the body as it is.
	out any
}

// do sends one request. A transport failure is returned wrapped; an answer outside 2xx is returned
// as a *Problem.
func (c *Client) do(ctx context.Context, r request) error {
	resp, err := c.send(ctx, r, "application/json, application/problem+json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch out := r.out.(type) {
	case nil:
	case *[]byte:
		if *out, err = io.ReadAll(resp.Body); err != nil {
			return fmt.Errorf("%s %s: read the %d answer: %w", r.method, r.path, resp.StatusCode, err)
		}
	default:
		if resp.StatusCode == http.StatusNoContent {
			break
		}
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("%s %s: decode the %d answer: %w", r.method, r.path, resp.StatusCode, err)
		}
	}
	return nil
}

// send sends one request asking for accept, and returns the answer when it is 2xx, its body for
// the caller to read and close. A transport failure is returned wrapped; an answer outside 2xx is
// returned as a *Problem.
func (c *Client) send(ctx context.Context, r request, accept string) (*http.Response, error) {
	target := c.base.String() + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode the request: %w", r.method, r.path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if r.body != nil {
		ct := r.contentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("Accept", accept)
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// A *url.Error repeats the method and URL; say them once, in our own words.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s: cannot reach the cheops API at %s: %w", r.method, r.path, c.base, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, readProblem(resp, r.method+" "+r.path)
	}
	return resp, nil
}

// Problem is an answer of the API outside 2xx: an RFC 9457 problem document as the API writes it
// (application/problem+json), or, when the body is something else (a proxy's error page), the
// status with the body's text as Detail. Use errors.As to reach it.
type Problem struct {
	// Type is a URI reference naming the kind of problem; the API writes "about:blank".
	Type string `json:"type"`
	// Title is the status's text ("Unprocessable Entity").
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail says what went wrong in this request.
	Detail string `json:"detail,omitempty"`
	// Errors names each field of the request at fault, when the API knows them.
	Errors []FieldProblem `json:"errors,omitempty"`
	// Field is the first field at fault ("name", "policy.timeout", "If-Match"), or "" when the
	// problem is not about one field.
	Field string `json:"-"`
	// Request is the method and path that failed ("POST /v1/resources").
	Request string `json:"-"`
}

// FieldProblem is one invalid field of a request.
type FieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error says which request failed, the status and the detail, and every field at fault when there
// are several (the detail names the first one already).
func (p *Problem) Error() string {
	var b strings.Builder
	if p.Request != "" {
		b.WriteString(p.Request + ": ")
	}
	fmt.Fprintf(&b, "%d %s", p.Status, p.Title)
	if p.Detail != "" {
		b.WriteString(": " + p.Detail)
	}
	if len(p.Errors) > 1 {
		for _, fe := range p.Errors {
			fmt.Fprintf(&b, "\n  %s: %s", fe.Field, fe.Message)
		}
	}
	return b.String()
}

// maxProblemBody bounds how much of an error body is read: a problem document is small, and an
// HTML error page only needs its start to be recognisable.
const maxProblemBody = 64 << 10

func readProblem(resp *http.Response, req string) *Problem {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxProblemBody))
	p := &Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode), Request: req}
	var doc Problem
	if json.Unmarshal(data, &doc) == nil && (doc.Title != "" || doc.Detail != "" || doc.Status != 0) {
		p.Type, p.Detail, p.Errors = doc.Type, doc.Detail, doc.Errors
		if doc.Title != "" {
			p.Title = doc.Title
		}
	} else if text := strings.TrimSpace(string(data)); text != "" {
		const max = 512
		if len(text) > max {
			text = text[:max] + "…"
		}
		p.Detail = fmt.Sprintf("%s answered with a %s body: %s", resp.Request.URL.Host, contentType(resp), text)
	}
	if len(p.Errors) > 0 {
		p.Field = p.Errors[0].Field
	}
	return p
}

func contentType(resp *http.Response) string {
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		return ct
	}
	return "non-JSON"
}

// StatusCode returns the HTTP status of err's *Problem, or 0 when err is nil or did not come from
// an answer of the API (the server could not be reached, the context ended).
func StatusCode(err error) int {
	var p *Problem
	if errors.As(err, &p) {
		return p.Status
	}
	return 0
}

// IsNotFound reports whether err is the API's 404: the site or resource does not exist.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// Health calls /healthz: nil when the API process serves requests.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, request{method: http.MethodGet, path: "/healthz"})
}

// Ready calls /readyz: nil when the API's etcd and Temporal answer; otherwise a *Problem whose
// Detail says which does not.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, request{method: http.MethodGet, path: "/readyz"})
}

// OpenAPI returns the API's OpenAPI 3 document (YAML).
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	var doc []byte
	err := c.do(ctx, request{method: http.MethodGet, path: "/openapi.yaml", out: &doc})
	return doc, err
}
