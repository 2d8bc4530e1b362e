package openstack

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/cheops-io/cheops"
)

// classify decides, once, whether a failure talking to an OpenStack service is worth retrying, and
// words it with OpenStack's own message rather than gophercloud's dump of the response.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ce *cheops.ClassifiedError
	if errors.As(err, &ce) {
		return err
	}
	var code gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &code) {
		msg := fmt.Errorf("%s %s: %d %s: %s", code.Method, code.URL, code.Actual, http.StatusText(code.Actual), serviceMessage(code.Body))
		return cheops.Classify(classOfStatus(code.Actual), msg)
	}
	if cheops.IsConnectionFailure(err) {
		return cheops.Classify(cheops.Unreachable, err)
	}
	return cheops.Classify(cheops.Transient, err)
}

func classOfStatus(status int) cheops.ErrorClass {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
		return cheops.Transient
	case status == http.StatusUnauthorized:
		// A token the service no longer accepts is re-issued by gophercloud before this point: a
		// 401 that reaches us means the credentials themselves are refused.
		return cheops.Permanent
	case status >= 400:
		// 400, 403, 404 (a referenced object missing), 409: the site rejects the request.
		return cheops.Permanent
	default:
		return cheops.Transient
	}
}

// serviceMessage digs the human message out of an OpenStack error body: nova's
// {"badRequest": {"message": …}}, neutron's {"NeutronError": {"message": …}}, keystone's
// {"error": {"message": …}}; glance answers with HTML or text, kept short.
func serviceMessage(body []byte) string {
	var doc any
	if json.Unmarshal(body, &doc) == nil {
		if m := findMessage(doc); m != "" {
			return m
		}
	}
	s := string(body)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func findMessage(v any) string {
	switch t := v.(type) {
	case map[string]any:
		for _, k := range []string{"message", "Message", "detail", "title"} {
			if s, ok := t[k].(string); ok && s != "" {
				return s
			}
		}
		for _, sub := range t {
			if m := findMessage(sub); m != "" {
				return m
			}
		}
	}
	return ""
}

// notFound reports whether err is a 404 from a service.
func notFound(err error) bool {
	return gophercloud.ResponseCodeIs(err, http.StatusNotFound)
}

// permanent builds a permanent error, for what the site would reject anyway.
func permanent(format string, args ...any) error {
	return cheops.Classify(cheops.Permanent, fmt.Errorf(format, args...))
}
