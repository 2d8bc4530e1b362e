package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// issuer is a real OpenID provider as far as discovery and keys go: it serves its discovery
// document and its JWKS, and signs tokens with its key.
type issuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/keys",
			"authorization_endpoint": is.srv.URL + "/auth", "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

// sign makes an ID token with the claims given over sane defaults, signed with key (the issuer's
// when nil).
func (is *issuer) sign(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	if key == nil {
		key = is.key
	}
	all := map[string]any{"iss": is.srv.URL, "aud": "cheops", "sub": "alice", "cheops_role": "operator",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(all, k)
		} else {
			all[k] = v
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(all)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func TestOIDCTokens(t *testing.T) {
	is := newIssuer(t)
	o := &OIDC{Issuer: is.srv.URL, Audience: "cheops", SitesClaim: "cheops_sites"}
	ctx := context.Background()
	id, err := o.Authenticate(ctx, is.sign(t, nil, nil))
	if err != nil || id.Name != "alice" || id.Role != Operator || id.Bound() {
		t.Fatalf("a good token: %+v, %v", id, err)
	}
	id, err = o.Authenticate(ctx, is.sign(t, nil, map[string]any{"cheops_role": []any{"viewer", "admin", "root"}, "cheops_sites": "region=eu"}))
	if err != nil || id.Role != Admin || !id.Bound() || !id.MaySee(map[string]string{"region": "eu"}) {
		t.Fatalf("a list of roles, bound: %+v, %v", id, err)
	}
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, token := range map[string]string{
		"expired":        is.sign(t, nil, map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}),
		"wrong audience": is.sign(t, nil, map[string]any{"aud": "someone-else"}),
		"wrong issuer":   is.sign(t, nil, map[string]any{"iss": "https://evil.example"}),
		"wrong key":      is.sign(t, otherKey, nil),
		"no role":        is.sign(t, nil, map[string]any{"cheops_role": nil}),
		"unknown role":   is.sign(t, nil, map[string]any{"cheops_role": "root"}),
		"no subject":     is.sign(t, nil, map[string]any{"sub": nil}),
		"bad sites":      is.sign(t, nil, map[string]any{"cheops_sites": "x==="}),
		"not a JWT":      "cheops_plain-token",
	} {
		if _, err := o.Authenticate(ctx, token); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrInvalidToken", name, err)
		}
	}
	// A chain with a tokens file: each knows its own tokens.
	chain := Chain{Tokens{"static": {Name: "bot", Role: Viewer}}, o}
	if id, err := chain.Authenticate(ctx, "static"); err != nil || id.Name != "bot" {
		t.Fatalf("chain, static token: %+v, %v", id, err)
	}
	if id, err := chain.Authenticate(ctx, is.sign(t, nil, nil)); err != nil || id.Name != "alice" {
		t.Fatalf("chain, ID token: %+v, %v", id, err)
	}
	if _, err := chain.Authenticate(ctx, "nobody"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("chain, unknown token: %v", err)
	}
}

// An issuer that is down when the server starts is asked again later.
func TestOIDCIssuerDownThenUp(t *testing.T) {
	is := newIssuer(t)
	good := is.sign(t, nil, nil)
	url := is.srv.URL
	is.srv.Close()
	o := &OIDC{Issuer: url, Audience: "cheops"}
	if _, err := o.Authenticate(context.Background(), good); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("issuer down: %v", err)
	}
	if o.verifier != nil {
		t.Fatal("a failed discovery was kept")
	}
}
