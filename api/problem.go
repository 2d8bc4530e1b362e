package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/cheops-io/cheops"
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
	return problem(http.StatusUnprocessableEntity, err.Error())
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
			msg := http.StatusText(he.Code)
			if s, ok := he.Message.(string); ok {
				msg = s
			}
			p = problem(he.Code, msg)
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

// decode reads a JSON body strictly: unknown fields, trailing data and wrong types are 422s naming
// the field; an oversized body is a 413.
func decode(c echo.Context, v any) error {
	return decodeJSON(c.Request().Body, v)
}

// decodeJSON is decode of any reader.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return problem(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
		case errors.As(err, &te):
			return invalid(te.Field, "must be "+te.Type.String())
		case errors.As(err, &se):
			return problem(http.StatusBadRequest, fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, err))
		case errors.Is(err, io.EOF):
			return problem(http.StatusBadRequest, "request body is empty")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return invalid(field, "unknown field")
		default:
			return problem(http.StatusBadRequest, "malformed JSON: "+err.Error())
		}
	}
	if dec.More() {
		return problem(http.StatusBadRequest, "trailing data after the JSON document")
	}
	return nil
}
