package cheops

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
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
	// Waiting failures mean the replica waits for something it depends on to be available on its
	// site (see ReplicaWaiting): not a failure, retried soon, and never counted as a rejection.
	Waiting ErrorClass = "Waiting"
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

// ProbeError is a failure to reach or authenticate with a site as cheops shows it: where it
// failed, in cheops' own words, and what kind of failure it was (refused, timed out, TLS, an HTTP
// status), never what the endpoint answered. Whoever adds a site chooses its endpoint, and must
// not read another host's answers back through a health message. Err keeps the detail for the
// worker's log.
type ProbeError struct {
	// Stage says where it failed: "site paris: version".
	Stage string
	// Kind says what kind of failure it was: "connection refused", "HTTP 401".
	Kind string
	Err  error
}

func (e *ProbeError) Error() string { return e.Stage + ": " + e.Kind }
func (e *ProbeError) Unwrap() error { return e.Err }

// TransportFailure names the kind of a failure to talk to an endpoint at all, or returns "" when
// err is not one.
func TransportFailure(err error) string {
	var dnsErr *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var notTLS tls.RecordHeaderError
	var tlsVerify *tls.CertificateVerificationError
	var alert tls.AlertError
	var urlErr *url.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case errors.As(err, &dnsErr):
		return "host name not resolved"
	case errors.As(err, &unknownCA):
		return "TLS: certificate signed by an unknown authority"
	case errors.As(err, &hostErr):
		return "TLS: certificate not valid for this host"
	case errors.As(err, &invalidCert), errors.As(err, &tlsVerify):
		return "TLS: invalid certificate"
	case errors.As(err, &notTLS):
		return "TLS: the endpoint does not speak TLS"
	case errors.As(err, &alert):
		return "TLS: handshake refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &urlErr) && urlErr.Timeout():
		return "timed out"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the endpoint"
	}
	return ""
}
