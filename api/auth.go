package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/auth"
	"github.com/cheops-io/cheops/scope"
)

// Authenticator says whose a bearer token is: auth.TokenFile, auth.OIDC, or an auth.Chain of them.
type Authenticator = auth.Authenticator

// identityKey is where a request's identity is kept in its echo.Context.
const identityKey = "cheops.identity"

// authorize lets a request through when it carries a bearer token of an identity whose role allows
// need. A missing or bad token is a 401 that says no more than that; a role short of need is a 403
// naming the role needed.
func (s *server) authorize(need auth.Role) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			token, ok := bearer(c.Request())
			id, certOK := certIdentity(c.Request())
			switch {
			case !ok && certOK:
				// A client certificate the server verified (mTLS) stands for its subject.
			case !ok:
				return unauthorized("a bearer token is required (Authorization: Bearer <token>)")
			case s.Auth == nil:
				return unauthorized("invalid token")
			default:
				var err error
				if id, err = s.Auth.Authenticate(c.Request().Context(), token); err != nil {
					// Why a token failed is for the server's log, not for the caller.
					s.Log.Debug("token refused", "error", err)
					return unauthorized("invalid token")
				}
			}
			if !id.Role.Allows(need) {
				p := problem(http.StatusForbidden, "role "+string(id.Role)+" of "+id.Name+" may not do this; it needs role "+string(need))
				p.Errors = []FieldProblem{{Field: "role", Message: "needs " + string(need)}}
				return p
			}
			c.Set(identityKey, id)
			return next(c)
		}
	}
}

// certIdentity is the identity of a client certificate the server verified against its client CA:
// the subject's common name (as "cert:<CN>") with the strongest role among its organizational
// units. A certificate naming no role is no identity.
func certIdentity(r *http.Request) (auth.Identity, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return auth.Identity{}, false
	}
	leaf := r.TLS.VerifiedChains[0][0]
	var best auth.Role
	for _, ou := range leaf.Subject.OrganizationalUnit {
		if role := auth.Role(ou); role.Valid() && role.Allows(best) && (best == "" || !best.Allows(role)) {
			best = role
		}
	}
	if best == "" || leaf.Subject.CommonName == "" {
		return auth.Identity{}, false
	}
	return auth.Identity{Name: "cert:" + leaf.Subject.CommonName, Role: best}, true
}

func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	return token, ok && strings.EqualFold(scheme, "Bearer") && token != ""
}

func unauthorized(detail string) *Problem {
	p := problem(http.StatusUnauthorized, detail)
	p.Errors = []FieldProblem{{Field: "Authorization", Message: detail}}
	p.wwwAuthenticate = `Bearer realm="cheops"`
	return p
}

// identity is the authenticated caller of a request.
func identity(c echo.Context) auth.Identity {
	id, _ := c.Get(identityKey).(auth.Identity)
	return id
}

// actor names the caller in events and logs.
func actor(c echo.Context) string { return identity(c).Name }

// mayPlace checks that a caller bound to some sites places a resource only on them: every site its
// scope reaches now must match the caller's selector. (The resource also records the selector, so
// a site added later outside it is never selected; see cheops.Resource.Within.)
func mayPlace(id auth.Identity, r cheops.Resource, sites []cheops.Site) error {
	if !id.Bound() {
		return nil
	}
	labels := map[string]map[string]string{}
	for _, st := range sites {
		labels[st.Name] = st.Labels
	}
	for _, name := range scope.Reach(r.Scope, sites, r.Driver) {
		if !id.MaySee(labels[name]) {
			p := problem(http.StatusForbidden, "token "+id.Name+" may only place resources on sites matching "+id.Sites+"; the scope reaches site "+name)
			p.Errors = []FieldProblem{{Field: "scope", Message: "reaches site " + name + ", outside " + id.Sites}}
			return p
		}
	}
	return nil
}

// maySee reports whether the caller may see a resource: an unbound caller sees all; a bound one
// only those placed within its sites (every replica's site and every site the scope reaches).
func maySee(id auth.Identity, r cheops.Resource, replicas []cheops.Replica, sites []cheops.Site) bool {
	if !id.Bound() {
		return true
	}
	labels := map[string]map[string]string{}
	for _, st := range sites {
		labels[st.Name] = st.Labels
	}
	for _, rep := range replicas {
		if !id.MaySee(labels[rep.Site]) {
			return false
		}
	}
	for _, name := range scope.Reach(r.Scope, sites, r.Driver) {
		if !id.MaySee(labels[name]) {
			return false
		}
	}
	return true
}
