package cheops

import (
	"errors"
	"fmt"
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
