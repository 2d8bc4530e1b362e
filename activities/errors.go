package activities

import (
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/cheops-io/cheops"
)

// asTemporalError maps a classified driver error to Temporal's retry behaviour; this is the one
// place where error classes meet retry policies. Only the message crosses into the history.
func asTemporalError(err error) error {
	if err == nil {
		return nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return err
	}
	class := cheops.ClassOf(err)
	if class == cheops.Permanent {
		return temporal.NewNonRetryableApplicationError(err.Error(), string(class), nil)
	}
	return temporal.NewApplicationError(err.Error(), string(class))
}
