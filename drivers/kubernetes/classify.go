package kubernetes

import (
	"strings"

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
