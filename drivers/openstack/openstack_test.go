package openstack

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/cheops-io/cheops"
)

func TestValidateNamesTheFieldAtFault(t *testing.T) {
	d := New()
	cases := []struct{ manifest, field, msg string }{
		{`[]`, "manifest", "must be an object"},
		{`{"spec": {}}`, "manifest.type", "is required"},
		{`{"type": "compute.volume", "spec": {}}`, "manifest.type", `unknown type "compute.volume"`},
		{`{"type": "compute.keypair"}`, "manifest.spec", "is required"},
		{`{"type": "compute.keypair", "spec": {"name": "k", "publicKey": "x", "extra": 1}}`, "manifest.spec", `unknown field "extra"`},
		{`{"type": "compute.keypair", "spec": {"name": "k"}}`, "manifest.spec.publicKey", "is required"},
		{`{"type": "compute.flavor", "spec": {"name": "f", "vcpus": 0, "ram": 1}}`, "manifest.spec.vcpus", "at least 1"},
		{`{"type": "compute.flavor", "spec": {"name": "f", "vcpus": 1, "ram": 1, "projects": ["p"]}}`, "manifest.spec.projects", "private"},
		{`{"type": "network.security_group", "spec": {"name": "g", "rules": [{"direction": "up"}]}}`, "manifest.spec.rules[0].direction", "ingress or egress"},
		{`{"type": "network.security_group", "spec": {"name": "g", "rules": [{"direction": "ingress", "portRangeMin": 22, "portRangeMax": 22}]}}`, "manifest.spec.rules[0].protocol", "is required"},
		{`{"type": "network.network", "spec": {"name": "n", "subnets": [{"name": "a", "cidr": "10.0.0.1/24"}]}}`, "manifest.spec.subnets[0].cidr", "CIDR"},
		{`{"type": "network.network", "spec": {"name": "n", "subnets": [{"name": "a", "cidr": "10.0.0.0/24"}, {"name": "a", "cidr": "10.0.1.0/24"}]}}`, "manifest.spec.subnets[1].name", "not unique"},
		{`{"type": "network.network", "spec": {"name": "n", "subnets": [{"name": "a", "cidr": "10.0.0.0/24", "gatewayIP": "10.0.1.1"}]}}`, "manifest.spec.subnets[0].gatewayIP", "address in"},
		{`{"type": "image.image", "spec": {"name": "i", "url": "file:///etc/passwd", "checksum": "x"}}`, "manifest.spec.url", "http"},
		{`{"type": "image.image", "spec": {"name": "i", "url": "http://h/i", "checksum": "abc"}}`, "manifest.spec.checksum", "SHA-256"},
		{`{"type": "compute.server", "spec": {"name": "s", "flavor": {}, "image": {"id": "x"}}}`, "manifest.spec.flavor", "exactly one"},
		{`{"type": "compute.server", "spec": {"name": "s", "flavor": {"id": "x"}, "image": {"id": "x"}, "networks": [{"id": "a", "name": "b"}]}}`, "manifest.spec.networks[0]", "exactly one"},
		{`{"type": "compute.server", "spec": {"name": "s", "flavor": {"id": "x"}, "image": {"id": "x"}, "metadata": {"cheops_x": "1"}}}`, "manifest.spec.metadata.cheops_x", "reserved"},
	}
	for _, c := range cases {
		err := d.Validate(json.RawMessage(c.manifest))
		var fe *cheops.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Message, c.msg) {
			t.Errorf("%s: got %v, want %s: …%s…", c.manifest, err, c.field, c.msg)
		}
	}
	ok := `{"type": "compute.server", "spec": {"name": "s", "flavor": {"resource": "small"}, "image": {"name": "cirros"},
		"networks": [{"resource": "net-a"}, {"id": "0e8a"}], "keypair": {"resource": "kp"}, "securityGroups": [{"resource": "web"}]}}`
	if err := d.Validate(json.RawMessage(ok)); err != nil {
		t.Fatal(err)
	}
	refs, err := d.References(json.RawMessage(ok))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range refs {
		got = append(got, r.Field+"="+r.Resource)
	}
	want := "manifest.spec.flavor=small manifest.spec.networks[0]=net-a manifest.spec.keypair=kp manifest.spec.securityGroups[0]=web"
	if strings.Join(got, " ") != want {
		t.Errorf("references %v, want %s", got, want)
	}
}

func TestValidateSite(t *testing.T) {
	d := New()
	d.FilesDir = "/etc/cheops-sites"
	site := func(o cheops.OpenStackSite) cheops.Site {
		return cheops.Site{Name: "s", Driver: cheops.DriverOpenStack, OpenStack: &o}
	}
	pw := cheops.Credentials{Password: "p"}
	cases := []struct {
		site  cheops.Site
		cred  cheops.Credentials
		field string
	}{
		{cheops.Site{Name: "s", Driver: cheops.DriverOpenStack}, pw, "openstack"},
		{site(cheops.OpenStackSite{Region: "R", Username: "u", ProjectName: "p"}), pw, "openstack.authURL"},
		{site(cheops.OpenStackSite{AuthURL: "keystone:5000", Region: "R", Username: "u", ProjectName: "p"}), pw, "openstack.authURL"},
		{site(cheops.OpenStackSite{AuthURL: "http://k/v3", Username: "u", ProjectName: "p"}), pw, "openstack.region"},
		{site(cheops.OpenStackSite{AuthURL: "http://k/v3", Region: "R", Username: "u", ProjectName: "p"}), cheops.Credentials{}, "openstack.password"},
		{site(cheops.OpenStackSite{AuthURL: "http://k/v3", Region: "R", Username: "u"}), pw, "openstack.projectName"},
		{site(cheops.OpenStackSite{AuthURL: "http://k/v3", Region: "R"}), pw, "openstack.username"},
		{site(cheops.OpenStackSite{AuthURL: "http://k/v3", Region: "R", ApplicationCredentialID: "a"}), cheops.Credentials{}, "openstack.applicationCredentialSecret"},
		{site(cheops.OpenStackSite{CloudsFile: "/etc/openstack/clouds.yaml"}), cheops.Credentials{}, "openstack.cloud"},
		{site(cheops.OpenStackSite{CloudsFile: "/etc/cheops-sites/c.yaml", Cloud: "c"}), pw, "openstack.cloudsFile"},
		{site(cheops.OpenStackSite{CloudsFile: "/etc/openstack/clouds.yaml", Cloud: "c"}), cheops.Credentials{}, "openstack.cloudsFile"},
		{site(cheops.OpenStackSite{CloudsFile: "/etc/cheops-sites/../passwd", Cloud: "c"}), cheops.Credentials{}, "openstack.cloudsFile"},
		{site(cheops.OpenStackSite{AuthURL: "http://k/v3", Region: "R", Username: "u", ProjectName: "p", CAFile: "/etc/ssl/ca.pem"}), pw, "openstack.caFile"},
		{site(cheops.OpenStackSite{AuthURL: "http://k/v3", Region: "R", Username: "u", ProjectName: "p", CAFile: "/ca", Insecure: true}), pw, "openstack.insecure"},
	}
	for i, c := range cases {
		err := d.ValidateSite(c.site, c.cred)
		var fe *cheops.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("case %d: got %v, want a problem with %s", i, err, c.field)
		}
	}
	if err := New().ValidateSite(site(cheops.OpenStackSite{CloudsFile: "/etc/cheops-sites/c.yaml", Cloud: "c"}), cheops.Credentials{}); err == nil {
		t.Error("a clouds file accepted by a driver that allows no host file")
	}
	for _, ok := range []struct {
		site cheops.Site
		cred cheops.Credentials
	}{
		{site(cheops.OpenStackSite{AuthURL: "https://k:5000/v3", Region: "R", Username: "u", ProjectName: "p"}), pw},
		{site(cheops.OpenStackSite{AuthURL: "https://k:5000/v3", Region: "R", ApplicationCredentialID: "a"}), cheops.Credentials{ApplicationCredentialSecret: "s"}},
		{site(cheops.OpenStackSite{CloudsFile: "/etc/cheops-sites/c.yaml", Cloud: "c", Region: "R"}), cheops.Credentials{}},
		{site(cheops.OpenStackSite{AuthURL: "https://k:5000/v3", Region: "R", Username: "u", ProjectName: "p", CAFile: "/etc/cheops-sites/ca.pem"}), pw},
	} {
		if err := d.ValidateSite(ok.site, ok.cred); err != nil {
			t.Errorf("%+v: %v", ok.site.OpenStack, err)
		}
	}
}

func TestClassify(t *testing.T) {
	resp := func(code int, body string) error {
		return gophercloud.ErrUnexpectedResponseCode{Method: "POST", URL: "http://nova/servers", Actual: code, Body: []byte(body)}
	}
	cases := []struct {
		err   error
		class cheops.ErrorClass
		msg   string
	}{
		{resp(400, `{"badRequest": {"code": 400, "message": "Invalid key_name provided."}}`), cheops.Permanent, "400 Bad Request: Invalid key_name provided."},
		{resp(409, `{"NeutronError": {"type": "InUse", "message": "Network 1 is in use.", "detail": ""}}`), cheops.Permanent, "Network 1 is in use."},
		{resp(403, `{"error": {"code": 403, "message": "Policy does not allow it."}}`), cheops.Permanent, "Policy does not allow it."},
		{resp(503, `<html>unavailable</html>`), cheops.Transient, "<html>unavailable</html>"},
		{resp(http.StatusTooManyRequests, ``), cheops.Transient, "429"},
	}
	for _, c := range cases {
		err := classify(c.err)
		if cheops.ClassOf(err) != c.class || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%v: got %s %q, want %s …%s…", c.err, cheops.ClassOf(err), err, c.class, c.msg)
		}
	}
}

// Host files (clouds.yaml, a CA bundle) are read only under the allowed folder, and a file that
// cannot be used is never quoted, whatever it holds or wherever it points.
func TestHostFilesAreConfinedAndNeverQuoted(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("clouds.yaml", "clouds:\n  lab:\n    auth: {auth_url: 'http://127.0.0.1:1/v3', username: u, password: p, project_name: p}\n    region_name: R\n")
	garbage := write("garbage.yaml", "top-secret-line: [\n")
	notPEM := write("ca.pem", "top-secret-line\n")
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero")); err != nil {
		t.Fatal(err)
	}
	d := New()
	d.FilesDir = dir
	clouds := func(path string) cheops.Target {
		return cheops.Target{Site: cheops.Site{Name: "s", Driver: cheops.DriverOpenStack, OpenStack: &cheops.OpenStackSite{CloudsFile: path, Cloud: "lab"}}}
	}
	if ao, _, _, err := d.authOptions(clouds(good)); err != nil || ao.IdentityEndpoint != "http://127.0.0.1:1/v3" {
		t.Fatalf("authOptions(good) = %+v, %v", ao.IdentityEndpoint, err)
	}
	for _, p := range []string{garbage, filepath.Join(dir, "zero"), "/etc/hostname", filepath.Join(dir, "missing")} {
		_, _, _, err := d.authOptions(clouds(p))
		var fe *cheops.FieldError
		if !errors.As(err, &fe) || fe.Field != "openstack.cloudsFile" || strings.Contains(err.Error(), "top-secret-line") {
			t.Errorf("authOptions(%s) = %v; want a refusal naming openstack.cloudsFile, quoting nothing", p, err)
		}
	}
	for _, p := range []string{notPEM, filepath.Join(dir, "zero"), "/etc/hostname"} {
		_, err := d.tlsConfig(&cheops.OpenStackSite{CAFile: p})
		var fe *cheops.FieldError
		if !errors.As(err, &fe) || fe.Field != "openstack.caFile" || strings.Contains(err.Error(), "top-secret-line") {
			t.Errorf("tlsConfig(%s) = %v; want a refusal naming openstack.caFile, quoting nothing", p, err)
		}
	}
}
