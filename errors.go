package cheops

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
)

// ErrorClass says how a failure on a site should be handled.
type ErrorClass string

// Error classes, decided once at the driver boundary.
const (
	// Transient failures are retried with backoff.
	Transient ErrorClass = "Transient"
	// Permanent failures mean the site rejected the object; retrying cannot help.
	Permanent ErrorClass = "Permanent"
	// Unreachable failures mean the site could not be reached at all.
	Unreachable ErrorClass = "Unreachable"
)

// ClassifiedError is an error with its class.
type ClassifiedError struct {
	Class ErrorClass
	Err   error
}

func (e *ClassifiedError) Error() string { return fmt.Sprintf("%s: %v", e.Class, e.Err) }
func (e *ClassifiedError) Unwrap() error { return e.Err }

// Classify wraps err with a class; nil stays nil.
func Classify(class ErrorClass, err error) error {
	if err == nil {
		return nil
	}
	return &ClassifiedError{Class: class, Err: err}
}

// ClassOf returns the class of err; an unclassified error is Transient.
func ClassOf(err error) ErrorClass {
	var ce *ClassifiedError
	if errors.As(err, &ce) {
		return ce.Class
	}
	return Transient
}

// FieldError is a validation failure of one field of a request, named by its JSON path.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// IsConnectionFailure reports whether err means the site could not be reached at all: a refused or
// unroutable connection, a name that does not resolve, a dial or a request that timed out. Drivers
// classify such errors Unreachable.
func IsConnectionFailure(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	var urlErr *url.Error
	return errors.As(err, &urlErr) && urlErr.Timeout()
}
