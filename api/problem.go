package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"reflect"
	"strings"

	"github.com/labstack/echo/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/store"
)

// Problem is an RFC 9457 problem document; every error the API returns is one.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Errors names each field at fault.
	Errors []FieldProblem `json:"errors,omitempty"`
	// wwwAuthenticate, when set, is sent as the WWW-Authenticate header (a 401).
	wwwAuthenticate string
}

// FieldProblem is one invalid field of a request.
type FieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail) }

func problem(status int, detail string) *Problem {
	return &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
}

// problemAt is a problem of any status that names the field at fault: a header, a path or query
// parameter, the body, or a member of it.
func problemAt(status int, field, detail string) *Problem {
	p := problem(status, detail)
	p.Errors = []FieldProblem{{Field: field, Message: detail}}
	return p
}

func invalid(field, msg string) *Problem {
	p := problem(http.StatusUnprocessableEntity, field+": "+msg)
	p.Errors = []FieldProblem{{Field: field, Message: msg}}
	return p
}

func fieldProblem(err error, prefix string) *Problem {
	var fe *cheops.FieldError
	if errors.As(err, &fe) {
		return invalid(prefix+fe.Field, fe.Message)
	}
	field := strings.TrimSuffix(prefix, ".")
	if field == "" {
		field = "body"
	}
	return problemAt(http.StatusUnprocessableEntity, field, err.Error())
}

// errorHandler renders every error as problem+json. Unexpected errors are logged and answered with
// a generic 500 that says nothing of the internals.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var p *Problem
		var he *echo.HTTPError
		switch {
		case errors.As(err, &p):
		case errors.As(err, &he):
			p = routerProblem(he, c)
		case storeUnavailable(err):
			// etcd electing a leader, or a member lost under a request: the client retries.
			log.Warn("store unavailable", "method", c.Request().Method, "path", c.Path(), "error", err)
			p = problem(http.StatusServiceUnavailable, "the store is unavailable for a moment; retry: with the same Idempotency-Key (POST) or If-Match (PUT, PATCH) a change is applied once")
			c.Response().Header().Set("Retry-After", "1")
		default:
			log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "error", err)
			p = problem(http.StatusInternalServerError, "internal error; see the server log")
		}
		c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
		if p.wwwAuthenticate != "" {
			c.Response().Header().Set("WWW-Authenticate", p.wwwAuthenticate)
		}
		c.Response().WriteHeader(p.Status)
		_ = json.NewEncoder(c.Response()).Encode(p)
	}
}

// routerProblem is the problem for an error of Echo's own: a path no route matches, a method the
// route does not serve, or an error of Echo's binding. Each names what is at fault.
func routerProblem(he *echo.HTTPError, c echo.Context) *Problem {
	req := c.Request()
	switch he.Code {
	case http.StatusNotFound:
		return problemAt(he.Code, "path", "no route for "+truncate(req.URL.Path, 200))
	case http.StatusMethodNotAllowed:
		return problemAt(he.Code, "method", truncate(req.Method, 20)+" is not allowed on "+truncate(req.URL.Path, 200)+
			"; allowed: "+c.Response().Header().Get(echo.HeaderAllow))
	case http.StatusRequestEntityTooLarge:
		return problemAt(he.Code, "body", http.StatusText(he.Code))
	case http.StatusUnsupportedMediaType:
		return problemAt(he.Code, echo.HeaderContentType, http.StatusText(he.Code))
	}
	msg := http.StatusText(he.Code)
	if s, ok := he.Message.(string); ok && s != "" {
		msg = s
	}
	return problem(he.Code, msg)
}

// jsonKind names what a Go type is written as in JSON.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Name() != "" { // json.RawMessage: any JSON value
			return "a JSON value"
		}
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// truncate shortens what a caller sent before it is quoted back.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// decode reads a JSON body strictly: a Content-Type other than JSON is a 415; unknown fields, wrong
// types and invalid Unicode are 422s naming the field; malformed JSON, trailing data and an empty
// body are 400s and an oversized body a 413, each naming the body.
func decode(c echo.Context, v any) error {
	if ct := c.Request().Header.Get(echo.HeaderContentType); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != echo.MIMEApplicationJSON {
			return problemAt(http.StatusUnsupportedMediaType, echo.HeaderContentType, "must be application/json")
		}
	}
	return decodeJSON(c.Request().Body, v)
}

// decodeJSON is decode of any reader, whatever its media type.
func decodeJSON(r io.Reader, v any) error {
	data, err := io.ReadAll(r)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return problemAt(http.StatusRequestEntityTooLarge, "body", fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return problemAt(http.StatusRequestTimeout, "body", "the request body did not arrive in time")
	}
	if err != nil {
		return problemAt(http.StatusBadRequest, "body", "reading the request body failed")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			field := te.Field
			if field == "" {
				field = "body"
			}
			return invalid(field, "must be "+jsonKind(te.Type))
		case errors.As(err, &se):
			return problemAt(http.StatusBadRequest, "body", fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, err))
		case errors.Is(err, io.EOF):
			return problemAt(http.StatusBadRequest, "body", "request body is empty")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return invalid(field, "unknown field")
		default:
			return problemAt(http.StatusBadRequest, "body", "malformed JSON: "+err.Error())
		}
	}
	if len(bytes.TrimSpace(data[dec.InputOffset():])) > 0 {
		return problemAt(http.StatusBadRequest, "body", "trailing data after the JSON document")
	}
	if field, ok := validUnicode(data); !ok {
		return invalid(field, `is not valid Unicode: a string holds a byte sequence that is not UTF-8 or a lone surrogate escape such as "\ud800"`)
	}
	return nil
}

// storeUnavailable says whether err is etcd (or the way to it) being unavailable for a moment
// rather than a fault of cheops: gRPC's Unavailable or DeadlineExceeded, as the etcd client
// returns them (a status, or etcd's own error type), or a deadline of the store's.
func storeUnavailable(err error) bool {
	var st interface{ GRPCStatus() *status.Status }
	if errors.As(err, &st) && st.GRPCStatus().Code() == codes.DeadlineExceeded {
		return true
	}
	return store.Unavailable(err) || errors.Is(err, context.DeadlineExceeded)
}
