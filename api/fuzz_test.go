package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/api"
	"github.com/cheops-io/cheops/drivers/kubernetes"
	"github.com/cheops-io/cheops/drivers/openstack"
	"github.com/cheops-io/cheops/store"
)

// FuzzAPI sends the handlers arbitrary requests from an admin (method, path, Content-Type, If-Match,
// Idempotency-Key, body) over a real etcd store and the recording orchestrator. Whatever arrives:
// no panic, no 5xx, and every 4xx is a problem+json document with a detail and a field at fault,
// that the OpenAPI document describes. Requests net/http itself would refuse before any handler
// runs (an invalid method, a control character in a header) are not the handlers' to answer:
// ProblemListener's test covers those.
func FuzzAPI(f *testing.F) {
	type seed struct{ method, path, contentType, ifMatch, idemKey, body string }
	var seeds []seed
	for _, c := range hostileRequests() {
		s := seed{method: c.method, path: c.path, contentType: "application/json"}
		switch b := c.body.(type) {
		case string:
			s.body = b
		case nil:
		default:
			data, _ := json.Marshal(b)
			s.body = string(data)
		}
		for i := 0; i+1 < len(c.header); i += 2 {
			switch c.header[i] {
			case "Content-Type":
				s.contentType = c.header[i+1]
			case "If-Match":
				s.ifMatch = c.header[i+1]
			}
		}
		seeds = append(seeds, s)
	}
	res := `{"name":"web","manifest":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web"},"data":{"a":"<&>"}},"scope":{"expression":"paris | lyon"},"overrides":[{"selector":"region=eu","patch":{"data":{"b":"2"}}}],"policy":{"consistency":"transactional","timeout":"2m"}}`
	seeds = append(seeds,
		seed{"POST", "/v1/sites", "application/json", "", "", `{"name":"lyon","driver":"kubernetes","labels":{"region":"eu"},"kubernetes":{"kubeconfig":` + jsonString(kubeconfig) + `}}`},
		seed{"POST", "/v1/sites", "application/json", "", "", `{"name":"os","driver":"openstack","openstack":{"authURL":"http://127.0.0.1:1/v3","region":"R","username":"u","projectName":"p","password":"pw"}}`},
		seed{"PUT", "/v1/sites/os", "application/json", "", "", `{"openstack":{"authURL":"http://127.0.0.2:1/v3","region":"R","username":"u","projectName":"p"}}`},
		seed{"POST", "/v1/resources", "application/json", "", "key-1", res},
		seed{"POST", "/v1/resources", "application/json", "", "key-1", strings.Replace(res, "2m", "3m", 1)},
		seed{"GET", "/v1/resources/fuzz?x=1", "", "", "", ""},
		seed{"GET", "/v1/resources?limit=1&pageToken=eyJhZnRlciI6ImEifQ&state=Pending&site=paris&namePrefix=f", "", "", "", ""},
		seed{"PUT", "/v1/resources/fuzz", "application/json", `"1"`, "", `{"policy":{"maxParallel":3}}`},
		seed{"PATCH", "/v1/resources/fuzz", "application/merge-patch+json", `W/"1"`, "", `{"scope":{"sites":null,"selector":"region=eu"}}`},
		seed{"POST", "/v1/resources/fuzz:pause", "", "", "", ""},
		seed{"POST", "/v1/resources/fuzz:explode", "", "", "", ""},
		seed{"GET", "/v1/resources/fuzz/events", "", "", "", ""},
		seed{"DELETE", "/v1/resources/fuzz?orphan=maybe", "", "", "", ""},
		seed{"DELETE", "/v1/sites/lyon?force=true", "", "", "", ""},
		seed{"GET", "/readyz", "", "", "", ""},
		seed{"OPTIONS", "/v1/sites", "", "", "", ""},
		seed{"POST", "/v1/resources", "application/json", "", strings.Repeat("k", 300), res},
		seed{"POST", "/v1/resources", "application/json; charset=utf-8", "", "", `{"name":"x","manifest":{"kind":"\ud800\udc00"}}`},
	)
	for _, s := range seeds {
		f.Add(s.method, s.path, s.contentType, s.ifMatch, s.idemKey, []byte(s.body))
	}

	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdEndpoint}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ec.Close() })
	orch := &recorder{}
	// A prefix of its own: what the fuzzer creates is no other test's business.
	h := api.New(api.Config{
		Store:        store.New(ec, "/api-fuzz"),
		Orchestrator: orch,
		Drivers:      map[cheops.DriverName]cheops.Driver{cheops.DriverKubernetes: kubernetes.New(), cheops.DriverOpenStack: openstack.New()},
		Log:          slog.New(slog.DiscardHandler),
		BodyLimit:    64 << 10,
		Auth:         testTokens,
	})
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1/sites", `{"name":"paris","driver":"kubernetes","labels":{"region":"eu"},"kubernetes":{"kubeconfig":` + jsonString(kubeconfig) + `}}`},
		{"POST", "/v1/resources", strings.ReplaceAll(strings.Replace(res, `paris | lyon`, `paris`, 1), "web", "fuzz")},
	} {
		req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer admin-token")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 300 && rec.Code != http.StatusConflict {
			f.Fatalf("%s %s: %d %s", r.method, r.path, rec.Code, rec.Body)
		}
	}

	f.Fuzz(func(t *testing.T, method, path, contentType, ifMatch, idemKey string, body []byte) {
		if !strings.HasPrefix(path, "/") || !validHeaderValue(contentType) || !validHeaderValue(ifMatch) || !validHeaderValue(idemKey) {
			return
		}
		req, err := http.NewRequest(method, "http://cheops.test"+path, bytes.NewReader(body))
		if err != nil || req.URL.Host != "cheops.test" {
			return // net/http's server would refuse it before any handler
		}
		req.RequestURI, req.RemoteAddr = path, "192.0.2.1:1234"
		// An admin, so that every handler is reached; authorization has its own table test.
		req.Header.Set("Authorization", "Bearer admin-token")
		for k, v := range map[string]string{"Content-Type": contentType, "If-Match": ifMatch, "Idempotency-Key": idemKey} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		orch.Calls()
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", method, path, rec.Code, rec.Body)
		}
		if method == http.MethodOptions && rec.Code == http.StatusNoContent {
			return // Echo answers OPTIONS with Allow
		}
		if rec.Code >= 400 && !strings.HasPrefix(path, "/ui/") {
			// (The status page answers its forms and pages in HTML.)
			var p api.Problem
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("%s %q: %d with Content-Type %q: %s", method, path, rec.Code, ct, rec.Body)
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != rec.Code || p.Detail == "" {
				t.Fatalf("%s %q: %d not a problem with a detail: %s", method, path, rec.Code, rec.Body)
			}
			if rec.Code != http.StatusTooManyRequests && (len(p.Errors) == 0 || p.Errors[0].Field == "") {
				t.Fatalf("%s %q: %d names no field: %s", method, path, rec.Code, rec.Body)
			}
		}
		checkResponse(t, req, rec)
	})
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// validHeaderValue reports whether net/http's server would take v as a header value.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return v == strings.TrimSpace(v)
}
