package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/cheops-io/cheops"
)

func TestClassify(t *testing.T) {
	gr := schema.GroupResource{Resource: "configmaps"}
	gk := schema.GroupKind{Kind: "ConfigMap"}
	cases := []struct {
		name string
		err  error
		want cheops.ErrorClass
	}{
		{"invalid", apierrors.NewInvalid(gk, "x", field.ErrorList{field.Required(field.NewPath("data"), "")}), cheops.Permanent},
		{"forbidden by admission", apierrors.NewForbidden(gr, "x", errors.New("denied")), cheops.Permanent},
		{"kind not served", &meta.NoKindMatchError{GroupKind: gk}, cheops.Permanent},
		{"conflict", apierrors.NewConflict(gr, "x", errors.New("changed")), cheops.Transient},
		{"wrong field type under server-side apply", apierrors.NewInternalError(errors.New(`failed to create typed patch object (ro-4/rolled; /v1, Kind=ConfigMap): .data.bad: expected string`)), cheops.Permanent},
		{"other internal error", apierrors.NewInternalError(errors.New("etcdserver: request timed out")), cheops.Transient},
		{"throttled", apierrors.NewTooManyRequests("slow down", 1), cheops.Transient},
		{"internal", apierrors.NewInternalError(errors.New("boom")), cheops.Transient},
		{"unavailable", apierrors.NewServiceUnavailable("later"), cheops.Transient},
		{"connection refused", fmt.Errorf("apply: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), cheops.Unreachable},
		{"no such host", &net.DNSError{Err: "no such host", Name: "gone.example"}, cheops.Unreachable},
		{"timeout", fmt.Errorf("apply: %w", context.DeadlineExceeded), cheops.Unreachable},
	}
	for _, c := range cases {
		if got := cheops.ClassOf(classify(c.err)); got != c.want {
			t.Errorf("%s: class %s, want %s", c.name, got, c.want)
		}
	}
}

// A write that timed out may have changed the site: Transient, never Unreachable (untouched); one
// refused before it was sent is Unreachable.
func TestClassifyWrite(t *testing.T) {
	timedOut := fmt.Errorf("apply ConfigMap x: %w", &url.Error{Op: "Patch", URL: "https://site", Err: context.DeadlineExceeded})
	if got := cheops.ClassOf(classify(timedOut)); got != cheops.Unreachable {
		t.Errorf("a read that timed out is %s; want Unreachable", got)
	}
	if got := cheops.ClassOf(classifyWrite(timedOut)); got != cheops.Transient {
		t.Errorf("a write that timed out is %s; want Transient", got)
	}
	refused := fmt.Errorf("apply ConfigMap x: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	if got := cheops.ClassOf(classifyWrite(refused)); got != cheops.Unreachable {
		t.Errorf("a write refused before it was sent is %s; want Unreachable", got)
	}
}

func TestValidate(t *testing.T) {
	d := New()
	cases := map[string]string{
		`[]`: "manifest",
		`{"kind":"ConfigMap","metadata":{"name":"a"}}`:                                     "manifest.apiVersion",
		`{"apiVersion":"v1","metadata":{"name":"a"}}`:                                      "manifest.kind",
		`{"apiVersion":"v1","kind":"ConfigMap"}`:                                           "manifest.metadata",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"A_b"}}`:                 "manifest.metadata.name",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"Bad"}}`: "manifest.metadata.namespace",
	}
	for in, field := range cases {
		var fe *cheops.FieldError
		if err := d.Validate([]byte(in)); !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: %v, want a FieldError on %s", in, err, field)
		}
	}
	if err := d.Validate([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}`)); err != nil {
		t.Errorf("valid manifest refused: %v", err)
	}
}
