package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// OIDC authenticates OpenID Connect ID tokens: signed by the issuer's keys (its JWKS, found by
// discovery and refreshed by key ID), for the audience, not expired. The role comes from a claim;
// the name recorded as actor from another; a third, optional, binds the identity to sites.
type OIDC struct {
	// Issuer is the issuer URL the tokens name (iss) and whose discovery document is read.
	Issuer string
	// Audience is the client ID the tokens must be issued for (aud).
	Audience string
	// RoleClaim names the claim holding the role: a string, or a list whose strongest known role
	// counts ("cheops_role" by default).
	RoleClaim string
	// NameClaim names the claim recorded as the actor ("sub" by default; "email" is common).
	NameClaim string
	// SitesClaim, when set, names a claim holding a site selector the identity is bound to.
	SitesClaim string

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
}

// verifierFor finds the issuer's keys on first use, and again after a failure: a server starts
// even while the issuer is down, and accepts its tokens once it is back.
func (o *OIDC) verifierFor(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, o.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc issuer %s: %w", o.Issuer, err)
	}
	o.verifier = p.Verifier(&oidc.Config{ClientID: o.Audience})
	return o.verifier, nil
}

// LooksLikeJWT reports whether a bearer token has the shape of a JWT, so it is worth verifying as one.
func LooksLikeJWT(token string) bool {
	return strings.Count(token, ".") == 2 && strings.HasPrefix(token, "ey")
}

// Authenticate verifies an ID token and returns its identity, or ErrInvalidToken whatever failed
// (the reason is for the server's log, through the returned error's wrapped cause).
func (o *OIDC) Authenticate(ctx context.Context, token string) (Identity, error) {
	if !LooksLikeJWT(token) {
		return Identity{}, ErrInvalidToken
	}
	v, err := o.verifierFor(ctx)
	if err != nil {
		return Identity{}, errors.Join(ErrInvalidToken, err)
	}
	idt, err := v.Verify(ctx, token)
	if err != nil {
		return Identity{}, errors.Join(ErrInvalidToken, err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, errors.Join(ErrInvalidToken, err)
	}
	nameClaim, roleClaim := orDefault(o.NameClaim, "sub"), orDefault(o.RoleClaim, "cheops_role")
	name, _ := claims[nameClaim].(string)
	if name == "" {
		return Identity{}, errors.Join(ErrInvalidToken, fmt.Errorf("claim %s is missing", nameClaim))
	}
	role := strongestRole(claims[roleClaim])
	if role == "" {
		return Identity{}, errors.Join(ErrInvalidToken, fmt.Errorf("claim %s names no role", roleClaim))
	}
	var sites string
	if o.SitesClaim != "" {
		sites, _ = claims[o.SitesClaim].(string)
	}
	id, err := NewIdentity(name, role, sites)
	if err != nil {
		return Identity{}, errors.Join(ErrInvalidToken, err)
	}
	return id, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// strongestRole reads a role claim: a string, or a list of strings of which the strongest known
// role counts.
func strongestRole(v any) Role {
	var best Role
	consider := func(s any) {
		if r, ok := s.(string); ok && Role(r).Valid() && rank[Role(r)] > rank[best] {
			best = Role(r)
		}
	}
	switch v := v.(type) {
	case string:
		consider(v)
	case []any:
		for _, s := range v {
			consider(s)
		}
	}
	return best
}
