package kubernetes

import (
	"errors"
	"net"
	"strings"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/cheops-io/cheops"
)

// classify decides, once, whether a failure talking to an apiserver is worth retrying.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if m, ok := missing(err); ok {
		// Rejected, unless a resource of cheops will provide it (the activity decides).
		err = &cheops.MissingError{Missing: m, Err: err}
	}
	return cheops.Classify(classOf(err), err)
}

// classifyWrite is classify for a request that changes the site: one that timed out may have
// reached the site and changed it, so it is Transient (the outcome is unknown), never Unreachable,
// which says the site is known untouched. Only a request that never left (a connection refused, a
// failed dial or name lookup) is Unreachable.
func classifyWrite(err error) error {
	if err == nil {
		return nil
	}
	class := classOf(err)
	if class == cheops.Unreachable && !neverSent(err) {
		class = cheops.Transient
	}
	return cheops.Classify(class, err)
}

// neverSent reports whether a request failed before it could reach the site.
func neverSent(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	return errors.As(err, &dnsErr) || errors.As(err, &opErr) && opErr.Op == "dial"
}

func classOf(err error) cheops.ErrorClass {
	switch {
	case meta.IsNoMatchError(err):
		// The kind is not served by the site (e.g. a CRD missing there).
		return cheops.Permanent
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsForbidden(err),
		apierrors.IsUnauthorized(err), apierrors.IsMethodNotSupported(err), apierrors.IsNotAcceptable(err),
		apierrors.IsUnsupportedMediaType(err), apierrors.IsRequestEntityTooLargeError(err),
		apierrors.IsAlreadyExists(err), apierrors.IsGone(err):
		return cheops.Permanent
	case apierrors.IsNotFound(err):
		// A namespace that does not exist on the site: the site rejects the object.
		return cheops.Permanent
	case apierrors.IsInternalError(err) && strings.Contains(err.Error(), "failed to create typed patch object"):
		// Server-side apply answers 500 when a field has the wrong type for the object's schema
		// (a number where a string belongs): the object itself is wrong, and no retry mends it.
		return cheops.Permanent
	case cheops.IsConnectionFailure(err):
		return cheops.Unreachable
	default:
		// Conflicts, 429, 5xx, server timeouts and anything unknown: retry.
		return cheops.Transient
	}
}
