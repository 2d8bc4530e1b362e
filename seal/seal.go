// Package seal encrypts secrets at rest: AES-256-GCM under named keys, the key's ID written with
// each ciphertext so keys can rotate (the newest key seals, every key of the ring still opens).
// It holds keys only in memory and never logs or returns plaintext in an error.
package seal

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"
)

// prefix starts every sealed value: the format's version, so a later format can be told apart.
const prefix = "v1."

// maxKeyFile bounds what is read of a key file.
const maxKeyFile = 64 << 10

// keyID is what a key's name may be: it is written in clear before each ciphertext.
var keyID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Keyring holds the keys that seal and open secrets. The last key of its file is the current one,
// the one that seals; every key opens what it sealed.
type Keyring struct {
	keys    map[string]cipher.AEAD
	current string
}

// ErrNotSealed is returned by Open for a value that is not a sealed secret.
var ErrNotSealed = errors.New("not a sealed value")

// ParseKeys reads a key file: one key a line, "<id>:<base64 of 32 random bytes>", blank lines and
// lines starting with "#" ignored. The last key is the current one. Errors name the line, never
// its content.
func ParseKeys(b []byte) (*Keyring, error) {
	k := &Keyring{keys: map[string]cipher.AEAD{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, enc, ok := strings.Cut(line, ":")
		if !ok || !keyID.MatchString(id) {
			return nil, fmt.Errorf("line %d: want <id>:<base64 key>, the id of letters, digits, '-' or '_'", n)
		}
		raw, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("line %d: key %s is not the base64 of 32 bytes (AES-256)", n, id)
		}
		if _, dup := k.keys[id]; dup {
			return nil, fmt.Errorf("line %d: key %s appears twice", n, id)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		k.keys[id], k.current = aead, id
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if k.current == "" {
		return nil, errors.New("no key in the file")
	}
	return k, nil
}

// LoadKeys reads a key file (see ParseKeys). The file must be a regular file no larger than 64 KiB.
func LoadKeys(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("encryption key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("encryption key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("encryption key file %s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("encryption key file: %w", err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("encryption key file %s is larger than %d bytes", path, maxKeyFile)
	}
	k, err := ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("encryption key file %s: %w", path, err)
	}
	return k, nil
}

// NewKeyLine returns a key file line with a fresh random key, named after the time it was made.
func NewKeyLine(now time.Time) (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	return fmt.Sprintf("k%s:%s\n", now.UTC().Format("20060102T150405Z"), base64.StdEncoding.EncodeToString(raw)), nil
}

// EnsureKeyFile creates a key file with one fresh key, readable by its owner only, unless the file
// exists already. It reports whether it created one.
func EnsureKeyFile(path string) (bool, error) {
	line, err := NewKeyLine(time.Now())
	if err != nil {
		return false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := f.WriteString("# cheops encryption keys: <id>:<base64 key>; the last one seals, every one opens\n" + line); err != nil {
		f.Close()
		return false, err
	}
	return true, f.Close()
}

// Current returns the ID of the key that seals.
func (k *Keyring) Current() string { return k.current }

// Seal encrypts plaintext under the current key. aad (additional data: what the secret belongs to,
// such as its storage key) must be given again to open it, so a sealed value moved elsewhere does
// not open.
func (k *Keyring) Seal(plaintext, aad []byte) (string, error) {
	aead := k.keys[k.current]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	ct := aead.Seal(nonce, nonce, plaintext, aad)
	return prefix + k.current + "." + base64.RawURLEncoding.EncodeToString(ct), nil
}

// Open decrypts a sealed value with the key it names.
func (k *Keyring) Open(sealed string, aad []byte) ([]byte, error) {
	id, body, ok := strings.Cut(strings.TrimPrefix(sealed, prefix), ".")
	if !strings.HasPrefix(sealed, prefix) || !ok {
		return nil, ErrNotSealed
	}
	aead, known := k.keys[id]
	if !known {
		return nil, fmt.Errorf("sealed with key %s, which is not in the key file", id)
	}
	ct, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(ct) < aead.NonceSize() {
		return nil, fmt.Errorf("sealed value under key %s is corrupt", id)
	}
	pt, err := aead.Open(nil, ct[:aead.NonceSize()], ct[aead.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("sealed value under key %s does not open: wrong key or tampered value", id)
	}
	return pt, nil
}

// KeyOf returns the ID of the key a value was sealed with, and false for a value that is not sealed.
func KeyOf(sealed string) (string, bool) {
	if !strings.HasPrefix(sealed, prefix) {
		return "", false
	}
	id, _, ok := strings.Cut(strings.TrimPrefix(sealed, prefix), ".")
	return id, ok
}
