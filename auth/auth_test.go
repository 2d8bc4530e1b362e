package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRoles(t *testing.T) {
	for _, c := range []struct {
		have, need Role
		ok         bool
	}{{Viewer, Viewer, true}, {Viewer, Operator, false}, {Operator, Viewer, true}, {Operator, Admin, false}, {Admin, Operator, true}, {"root", Viewer, false}} {
		if got := c.have.Allows(c.need); got != c.ok {
			t.Errorf("%s allows %s = %v, want %v", c.have, c.need, got, c.ok)
		}
	}
}

func TestParseTokensNamesTheEntryAtFault(t *testing.T) {
	h := Hash("x")
	for _, c := range []struct{ doc, want string }{
		{"tokens: [{name: a, role: admin, sha256: " + h + ", extra: 1}]", "unknown field"},
		{"tokens: [{name: 'a b', role: admin, sha256: " + h + "}]", "tokens[0].name"},
		{"tokens: [{name: a, role: root, sha256: " + h + "}]", "tokens[0].role"},
		{"tokens: [{name: a, role: admin, sha256: abc}]", "tokens[0].sha256"},
		{"tokens: [{name: a, role: admin, sha256: " + h + "}, {name: a, role: viewer, sha256: " + Hash("y") + "}]", "tokens[1].name"},
		{"tokens: [{name: a, role: admin, sha256: " + h + "}, {name: b, role: viewer, sha256: " + h + "}]", "tokens[1].sha256"},
		{"tokens: [{name: a, role: admin, sha256: " + h + ", sites: 'x==='}]", "tokens[0].sites"},
	} {
		_, err := ParseTokens([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", c.doc, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), h) {
			t.Errorf("the error quotes a hash: %v", err)
		}
	}
}

// The tokens file is re-read when it changes, without a restart; a change that does not parse
// keeps the tokens read before and is reported.
func TestTokenFileIsReloaded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	write := func(doc string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("tokens: [{name: alice, role: admin, sha256: " + Hash("alice-secret") + "}]")
	f, err := LoadTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var reported []error
	f.OnError = func(err error) { reported = append(reported, err) }
	if id, err := f.Authenticate(context.Background(), "alice-secret"); err != nil || id.Name != "alice" || id.Role != Admin {
		t.Fatalf("alice: %+v, %v", id, err)
	}
	if _, err := f.Authenticate(context.Background(), "wrong"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a wrong token: %v", err)
	}
	write("tokens: [{name: bob, role: viewer, sha256: " + Hash("bob-secret") + ", sites: region=eu}]")
	f.checked = time.Time{} // skip the once-a-second wait
	if _, err := f.Authenticate(context.Background(), "alice-secret"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("alice after her token was removed: %v", err)
	}
	id, err := f.Authenticate(context.Background(), "bob-secret")
	if err != nil || id.Role != Viewer || !id.Bound() || !id.MaySee(map[string]string{"region": "eu"}) || id.MaySee(map[string]string{"region": "us"}) {
		t.Fatalf("bob: %+v, %v", id, err)
	}
	write("tokens: [{name: bob, role: superuser, sha256: " + Hash("bob-secret") + "}]")
	f.checked = time.Time{}
	if id, err := f.Authenticate(context.Background(), "bob-secret"); err != nil || id.Role != Viewer {
		t.Fatalf("after a bad change bob is %+v, %v; want the viewer read before", id, err)
	}
	if len(reported) != 1 || !strings.Contains(reported[0].Error(), "tokens[0].role") {
		t.Fatalf("reported %v; want the bad change reported once", reported)
	}
	if _, err := f.Authenticate(context.Background(), ""); !errors.Is(err, ErrInvalidToken) {
		t.Fatal("an empty token authenticated")
	}
	if _, err := LoadTokenFile("/dev/zero"); err == nil {
		t.Fatal("/dev/zero loaded as a tokens file")
	}
}
