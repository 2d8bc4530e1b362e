package openstack

import (
	"context"
	"net/http"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"

	"github.com/cheops-io/cheops"
)

// keypairSpec is a compute.keypair: a public key under a name unique to the site's user. Its local ID
// is the name; it cannot change in place.
type keypairSpec struct {
	Name      string `json:"name"`
	PublicKey string `json:"publicKey"`
}

func (s *keypairSpec) check() error {
	if err := required("spec.name", s.Name); err != nil {
		return err
	}
	return required("spec.publicKey", s.PublicKey)
}

func (s *keypairSpec) references() []cheops.Reference { return nil }

func (s *keypairSpec) apply(ctx context.Context, c call, _ cheops.ApplyRequest) (string, error) {
	for {
		kp, err := keypairs.Get(ctx, c.compute, s.Name, nil).Extract()
		if err == nil {
			// The unique name is the mark: a keypair by this name with this key is this replica,
			// made by an earlier attempt or already there.
			if strings.TrimSpace(kp.PublicKey) != strings.TrimSpace(s.PublicKey) {
				return "", permanent("immutable field spec.publicKey: keypair %s exists on the site with another public key; delete it or use another name", s.Name)
			}
			return s.Name, nil
		}
		if !notFound(err) {
			return "", err
		}
		_, err = keypairs.Create(ctx, c.compute, keypairs.CreateOpts{Name: s.Name, PublicKey: s.PublicKey}).Extract()
		if gophercloud.ResponseCodeIs(err, http.StatusConflict) {
			continue // made concurrently: look again
		}
		if err != nil {
			return "", err
		}
		return s.Name, nil
	}
}

func keypairExists(ctx context.Context, c call, name string) (bool, error) {
	_, err := keypairs.Get(ctx, c.compute, name, nil).Extract()
	if notFound(err) {
		return false, nil
	}
	return err == nil, err
}

func keypairRemove(ctx context.Context, c call, name string) error {
	return keypairs.Delete(ctx, c.compute, name, nil).ExtractErr()
}

// keypairFind finds a keypair by its name, and only when it holds the declared key: a keypair of
// that name with another key is not cheops'.
func keypairFind(ctx context.Context, c call, _ string, sp spec) (string, error) {
	s := sp.(*keypairSpec)
	kp, err := keypairs.Get(ctx, c.compute, s.Name, nil).Extract()
	if notFound(err) {
		return "", nil
	}
	if err != nil || strings.TrimSpace(kp.PublicKey) != strings.TrimSpace(s.PublicKey) {
		return "", err
	}
	return s.Name, nil
}
