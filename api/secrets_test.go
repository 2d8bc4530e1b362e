package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/cheops-io/cheops/api"
)

// twoContexts is a kubeconfig with a second context, whose cluster is another server.
var twoContexts = `apiVersion: v1
kind: Config
clusters:
- {name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}
- {name: d, cluster: {server: "https://127.0.0.2:1", insecure-skip-tls-verify: true}}
users: [{name: u, user: {token: ` + secret + `}}]
contexts:
- {name: c, context: {cluster: c, user: u}}
- {name: d, context: {cluster: d, user: u}}
current-context: c
`

// A stored secret is only ever sent where it was first sent: a PUT that changes where a site's
// secret goes (or how that endpoint is trusted) without sending the secret again is a 422 naming
// the secret's field, and changes nothing. Otherwise one call would send the password to an
// endpoint of the caller's choosing.
func TestChangingWhereASecretGoesNeedsTheSecret(t *testing.T) {
	h := newAPI(t)
	os := func(extra map[string]any) map[string]any {
		o := map[string]any{"authURL": "http://127.0.0.1:1/v3", "region": "RegionOne", "username": "u", "projectName": "p"}
		for k, v := range extra {
			o[k] = v
		}
		return map[string]any{"openstack": o}
	}
	appCred := func(extra map[string]any) map[string]any {
		o := map[string]any{"authURL": "http://127.0.0.1:1/v3", "region": "RegionOne", "applicationCredentialID": "ac1"}
		for k, v := range extra {
			o[k] = v
		}
		return map[string]any{"openstack": o}
	}
	mustCreate := func(body map[string]any) {
		t.Helper()
		if rec := do(t, h, http.MethodPost, "/v1/sites", body); rec.Code != http.StatusCreated {
			t.Fatalf("POST: %d %s", rec.Code, rec.Body)
		}
	}
	withName := func(name, driver string, body map[string]any) map[string]any {
		body["name"], body["driver"] = name, driver
		return body
	}
	mustCreate(withName("os-pw", "openstack", os(map[string]any{"password": secret})))
	mustCreate(withName("os-ac", "openstack", appCred(map[string]any{"applicationCredentialSecret": secret})))
	mustCreate(map[string]any{"name": "kube", "driver": "kubernetes", "kubernetes": map[string]any{"kubeconfig": twoContexts}})
	t.Cleanup(func() {
		for _, s := range []string{"os-pw", "os-ac", "kube"} {
			do(t, h, http.MethodDelete, "/v1/sites/"+s, nil)
		}
	})

	for _, c := range []struct {
		name, site string
		body       map[string]any
		field      string
	}{
		{"authURL", "os-pw", os(map[string]any{"authURL": "https://attacker.example/v3"}), "openstack.password"},
		{"username", "os-pw", os(map[string]any{"username": "someone-else"}), "openstack.password"},
		{"user domain", "os-pw", os(map[string]any{"userDomain": "Other"}), "openstack.password"},
		{"insecure", "os-pw", os(map[string]any{"insecure": true}), "openstack.password"},
		{"application credential ID", "os-ac", appCred(map[string]any{"applicationCredentialID": "ac2"}), "openstack.applicationCredentialSecret"},
		{"application credential authURL", "os-ac", appCred(map[string]any{"authURL": "http://127.0.0.2:1/v3"}), "openstack.applicationCredentialSecret"},
		{"kubeconfig context", "kube", map[string]any{"kubernetes": map[string]any{"context": "d"}}, "kubernetes.kubeconfig"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := do(t, h, http.MethodPut, "/v1/sites/"+c.site, c.body)
			var p api.Problem
			_ = json.Unmarshal(rec.Body.Bytes(), &p)
			if rec.Code != http.StatusUnprocessableEntity || len(p.Errors) == 0 || p.Errors[0].Field != c.field {
				t.Fatalf("status %d, want 422 naming %s: %s", rec.Code, c.field, rec.Body)
			}
		})
	}
	for site, want := range map[string]string{"os-pw": `"authURL":"http://127.0.0.1:1/v3"`, "os-ac": `"applicationCredentialID":"ac1"`, "kube": `"kubernetes":{}`} {
		if rec := do(t, h, http.MethodGet, "/v1/sites/"+site, nil); !strings.Contains(rec.Body.String(), want) {
			t.Errorf("a refused PUT changed %s: %s", site, rec.Body)
		}
	}

	// Sending the secret again, or changing nothing about where it goes, is fine.
	for _, c := range []struct {
		name, site string
		body       map[string]any
	}{
		{"authURL with the password", "os-pw", os(map[string]any{"authURL": "http://127.0.0.3:1/v3", "password": "new-" + secret})},
		{"region only", "os-pw", os(map[string]any{"authURL": "http://127.0.0.3:1/v3", "region": "RegionTwo"})},
		{"application credential with its secret", "os-ac", appCred(map[string]any{"applicationCredentialID": "ac2", "applicationCredentialSecret": secret})},
		{"namespace only", "kube", map[string]any{"kubernetes": map[string]any{"namespace": "apps"}}},
		{"context with the kubeconfig", "kube", map[string]any{"kubernetes": map[string]any{"context": "d", "kubeconfig": twoContexts}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if rec := do(t, h, http.MethodPut, "/v1/sites/"+c.site, c.body); rec.Code != http.StatusOK {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
		})
	}
}
