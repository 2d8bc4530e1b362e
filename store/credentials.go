package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/seal"
)

// SealWith makes the store seal every site's credentials it writes with the keyring's current key
// and open them with whichever key sealed them. Without a keyring, credentials are written as
// plain JSON and sealed ones cannot be read.
func (s *Store) SealWith(k *seal.Keyring) {
	s.keys = k
	s.opened.clear()
}

// openedCreds are credentials opened, by site: each with the sealed value it was opened from.
type openedCreds struct {
	mu     sync.Mutex
	bySite map[string]openedCred
}

type openedCred struct {
	raw  string
	cred cheops.Credentials
}

func (o *openedCreds) get(name string, raw []byte) (cheops.Credentials, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c, ok := o.bySite[name]
	if !ok || c.raw != string(raw) {
		return cheops.Credentials{}, false
	}
	return c.cred, true
}

func (o *openedCreds) put(name string, raw []byte, cred cheops.Credentials) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.bySite[name] = openedCred{raw: string(raw), cred: cred}
}

func (o *openedCreds) clear() {
	o.mu.Lock()
	defer o.mu.Unlock()
	clear(o.bySite)
}

// sealedCredentials is how credentials are kept in etcd once sealed.
type sealedCredentials struct {
	Sealed string `json:"sealed"`
}

// credAAD binds a sealed credential to its site, so a value copied to another site's key does not open.
func credAAD(name string) []byte { return []byte("credentials/" + name) }

// credValue is what is written to etcd for a site's credentials.
func (s *Store) credValue(name string, cred cheops.Credentials) (string, error) {
	if s.keys == nil {
		return mustJSON(cred), nil
	}
	sealed, err := s.keys.Seal([]byte(mustJSON(cred)), credAAD(name))
	if err != nil {
		return "", fmt.Errorf("seal credentials of site %s: %w", name, err)
	}
	return mustJSON(sealedCredentials{sealed}), nil
}

// decodeCred reads a site's credentials as etcd holds them: sealed, or plain JSON written before
// sealing was configured.
func (s *Store) decodeCred(name string, raw []byte) (cheops.Credentials, error) {
	if cred, ok := s.opened.get(name, raw); ok {
		return cred, nil
	}
	cred, err := s.openCred(name, raw)
	if err == nil {
		s.opened.put(name, raw, cred)
	}
	return cred, err
}

// openCred decodes, and unseals if sealed, a site's credentials as etcd holds them.
func (s *Store) openCred(name string, raw []byte) (cheops.Credentials, error) {
	var cred cheops.Credentials
	var sc sealedCredentials
	if err := json.Unmarshal(raw, &sc); err != nil {
		return cred, fmt.Errorf("decode credentials of site %s: %w", name, err)
	}
	if sc.Sealed == "" {
		if err := json.Unmarshal(raw, &cred); err != nil {
			return cred, fmt.Errorf("decode credentials of site %s: %w", name, err)
		}
		return cred, nil
	}
	if s.keys == nil {
		return cred, fmt.Errorf("credentials of site %s are sealed and no encryption key is configured", name)
	}
	plain, err := s.keys.Open(sc.Sealed, credAAD(name))
	if err != nil {
		return cred, fmt.Errorf("credentials of site %s: %w", name, err)
	}
	if err := json.Unmarshal(plain, &cred); err != nil {
		return cheops.Credentials{}, fmt.Errorf("credentials of site %s: sealed content is not credentials", name)
	}
	return cred, nil
}

// RotateCredentials re-seals under the current key every site's credentials that another key
// sealed, or that are stored in plain JSON, and reports how many it rewrote. Each rewrite compares
// the revision read, so a concurrent update is not overwritten (it is sealed under the current key
// anyway).
func (s *Store) RotateCredentials(ctx context.Context) (int, error) {
	if s.keys == nil {
		return 0, errors.New("no encryption key is configured")
	}
	p := s.prefix + "/credentials/"
	resp, err := s.c.Get(ctx, p, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("etcd list credentials: %w", err)
	}
	n := 0
	for _, kv := range resp.Kvs {
		name := strings.TrimPrefix(string(kv.Key), p)
		var sc sealedCredentials
		if json.Unmarshal(kv.Value, &sc) == nil {
			if id, ok := seal.KeyOf(sc.Sealed); ok && id == s.keys.Current() {
				continue
			}
		}
		cred, err := s.decodeCred(name, kv.Value)
		if err != nil {
			return n, err
		}
		v, err := s.credValue(name, cred)
		if err != nil {
			return n, err
		}
		ok, err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)},
			clientv3.OpPut(string(kv.Key), v))
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}
