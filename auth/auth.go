// Package auth says who calls the API and what they may do: identities from bearer tokens (a
// tokens file holding each token's SHA-256, never the token), their roles, and the site selector a
// token may be bound to. It knows nothing of HTTP routing, etcd or Temporal; package api applies it.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/cheops-io/cheops/scope"
)

// Role is what an identity may do. Each role may do what the ones before it may.
type Role string

// Roles, from least to most.
const (
	// Viewer reads everything but credentials (which no one reads).
	Viewer Role = "viewer"
	// Operator also declares, changes and deletes resources and steers them (pause, resume, retry,
	// resync).
	Operator Role = "operator"
	// Admin also manages sites and their credentials.
	Admin Role = "admin"
)

var rank = map[Role]int{Viewer: 1, Operator: 2, Admin: 3}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return rank[r] > 0 }

// Allows reports whether an identity of role r may do what needs role need.
func (r Role) Allows(need Role) bool { return rank[r] > 0 && rank[r] >= rank[need] }

// Identity is who made a request.
type Identity struct {
	// Name is the token's name, recorded as the actor of what the request changes.
	Name string
	Role Role
	// Sites, when set, is a label selector: the identity may only place resources on, and see
	// resources placed on, the sites it matches.
	Sites string
	sites scope.LabelSelector
}

// Bound reports whether the identity is limited to some sites.
func (id Identity) Bound() bool { return id.Sites != "" }

// MaySee reports whether a bound identity may see a site with these labels; an unbound one sees all.
func (id Identity) MaySee(labels map[string]string) bool {
	return !id.Bound() || id.sites.Matches(labels)
}

// ErrInvalidToken is the one answer for a token that does not authenticate, whatever the reason.
var ErrInvalidToken = errors.New("invalid token")

// Token is one entry of a tokens file.
type Token struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// SHA256 is the hex SHA-256 of the token.
	SHA256 string `json:"sha256"`
	// Sites is an optional label selector binding the token to some sites.
	Sites string `json:"sites,omitempty"`
}

// tokensFile is the document a tokens file holds (YAML or JSON).
type tokensFile struct {
	Tokens []Token `json:"tokens"`
}

var tokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)
var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// maxTokensFile bounds what is read of a tokens file.
const maxTokensFile = 4 << 20

// ParseTokens reads a tokens file. Errors name the entry at fault, never a hash.
func ParseTokens(b []byte) (map[string]Identity, error) {
	var f tokensFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("not a tokens file (tokens: [{name, role, sha256, sites}]): %w", err)
	}
	out := map[string]Identity{}
	names := map[string]bool{}
	for i, t := range f.Tokens {
		at := fmt.Sprintf("tokens[%d]", i)
		switch {
		case !tokenName.MatchString(t.Name):
			return nil, fmt.Errorf("%s.name: %q is not a name (letters, digits, '.', '_', '@', '-')", at, t.Name)
		case names[t.Name]:
			return nil, fmt.Errorf("%s.name: %s appears twice", at, t.Name)
		case !t.Role.Valid():
			return nil, fmt.Errorf("%s.role: %q is not viewer, operator or admin", at, t.Role)
		case !hexSHA256.MatchString(t.SHA256):
			return nil, fmt.Errorf("%s.sha256: not 64 lower-case hex digits", at)
		}
		if _, dup := out[t.SHA256]; dup {
			return nil, fmt.Errorf("%s.sha256: the same token as another entry", at)
		}
		id := Identity{Name: t.Name, Role: t.Role, Sites: t.Sites}
		if t.Sites != "" {
			sel, err := scope.ParseSelector(t.Sites)
			if err != nil {
				return nil, fmt.Errorf("%s.sites: %v", at, err)
			}
			id.sites = sel
		}
		names[t.Name] = true
		out[t.SHA256] = id
	}
	return out, nil
}

// Hash returns the hex SHA-256 of a token, as a tokens file holds it.
func Hash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// NewToken returns a fresh random token.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "cheops_" + base64.RawURLEncoding.EncodeToString(b), nil
}

// TokenFile authenticates bearer tokens against a tokens file, re-read when it changes (looked
// at no more than once a second), without a restart. A file that no longer parses keeps the
// tokens read before, and the error is reported to the OnError callback.
type TokenFile struct {
	path string
	// OnError, when set, hears of a tokens file that changed and could not be read.
	OnError func(error)

	mu      sync.Mutex
	tokens  map[string]Identity
	checked time.Time
	modTime time.Time
	size    int64
}

// LoadTokenFile reads a tokens file; it must read now.
func LoadTokenFile(path string) (*TokenFile, error) {
	f := &TokenFile{path: path}
	if err := f.reload(); err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return f, nil
}

func (f *TokenFile) reload() error {
	fh, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxTokensFile+1))
	if err != nil {
		return err
	}
	if len(b) > maxTokensFile {
		return fmt.Errorf("larger than %d bytes", maxTokensFile)
	}
	tokens, err := ParseTokens(b)
	if err != nil {
		return err
	}
	f.tokens, f.modTime, f.size = tokens, st.ModTime(), st.Size()
	return nil
}

// refresh re-reads the file when it changed.
func (f *TokenFile) refresh() {
	if time.Since(f.checked) < time.Second {
		return
	}
	f.checked = time.Now()
	st, err := os.Stat(f.path)
	if err == nil && st.ModTime().Equal(f.modTime) && st.Size() == f.size {
		return
	}
	if err == nil {
		err = f.reload()
	}
	if err != nil && f.OnError != nil {
		f.OnError(fmt.Errorf("tokens file %s: %w; the tokens read before stay in force", f.path, err))
	}
}

// Authenticate returns the identity of a bearer token, or ErrInvalidToken.
func (f *TokenFile) Authenticate(_ context.Context, token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrInvalidToken
	}
	sum := Hash(token)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refresh()
	// Looking up by the token's hash is no timing oracle on the token: a caller cannot steer the
	// bytes of the hash it compares.
	id, ok := f.tokens[sum]
	if !ok {
		return Identity{}, ErrInvalidToken
	}
	return id, nil
}

// NewIdentity returns an identity, checking its role and site selector.
func NewIdentity(name string, role Role, sites string) (Identity, error) {
	if !role.Valid() {
		return Identity{}, fmt.Errorf("role %q is not viewer, operator or admin", role)
	}
	id := Identity{Name: name, Role: role, Sites: sites}
	if sites != "" {
		sel, err := scope.ParseSelector(sites)
		if err != nil {
			return Identity{}, fmt.Errorf("sites: %w", err)
		}
		id.sites = sel
	}
	return id, nil
}

// Tokens is a fixed set of tokens and their identities, for a program that embeds the API (and
// for tests); a server reads a TokenFile instead.
type Tokens map[string]Identity

// Authenticate returns the identity of a token, or ErrInvalidToken.
func (t Tokens) Authenticate(_ context.Context, token string) (Identity, error) {
	if id, ok := t[token]; ok && token != "" {
		return id, nil
	}
	return Identity{}, ErrInvalidToken
}

// Authenticator says whose a bearer token is. Every failure is, or wraps, ErrInvalidToken.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Identity, error)
}

// Chain tries each authenticator in turn: the first that knows the token decides.
type Chain []Authenticator

// Authenticate returns the identity the first authenticator finds, or the last failure.
func (c Chain) Authenticate(ctx context.Context, token string) (Identity, error) {
	err := ErrInvalidToken
	for _, a := range c {
		var id Identity
		if id, err = a.Authenticate(ctx, token); err == nil {
			return id, nil
		}
	}
	return Identity{}, err
}
