package openstack

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

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

func (s *keypairSpec) apply(ctx context.Context, c call, req cheops.ApplyRequest) (string, error) {
	id, _, err := s.applyAdopting(ctx, c, req)
	return id, err
}

// applyAdopting makes the keypair, or finds the one this replica made, or adopts someone else's
// when the request allows it. A keypair carries no tag or metadata, so which one is the replica's
// is decided by its record (see keypairMine).
func (s *keypairSpec) applyAdopting(ctx context.Context, c call, req cheops.ApplyRequest) (string, string, error) {
	for {
		kp, err := getKeypair(ctx, c, s.Name)
		if err == nil {
			sameKey := strings.TrimSpace(kp.PublicKey) == strings.TrimSpace(s.PublicKey)
			if kp.Name == req.LocalID {
				// The one the replica recorded: made, or adopted, by an earlier apply.
				if !sameKey {
					return "", "", permanent("immutable field spec.publicKey: keypair %s exists on the site with another public key; delete it or use another name", s.Name)
				}
				return s.Name, "", nil
			}
			if sameKey && keypairMine(kp, req.UnrecordedSince) {
				return s.Name, "", nil
			}
			owner := kp.owner()
			switch {
			case !req.Adopt:
				return "", "", permanent("keypair %s already exists on the site and cheops did not create it (%s): policy.conflict abort leaves it alone; set policy.conflict adopt to take it over", s.Name, owner)
			case !sameKey:
				return "", "", permanent("keypair %s already exists on the site with another public key (%s): it cannot be adopted as declared; delete it or use another name", s.Name, owner)
			}
			return s.Name, owner, nil
		}
		if !notFound(err) {
			return "", "", err
		}
		_, err = keypairs.Create(ctx, c.compute, keypairs.CreateOpts{Name: s.Name, PublicKey: s.PublicKey}).Extract()
		if gophercloud.ResponseCodeIs(err, http.StatusConflict) {
			continue // made concurrently, by someone else: look again
		}
		if err != nil {
			return "", "", err
		}
		return s.Name, "", nil
	}
}

// keypair is nova's keypair with what gophercloud's leaves out: when it was made.
type keypair struct {
	Name      string `json:"name"`
	PublicKey string `json:"public_key"`
	UserID    string `json:"user_id"`
	CreatedAt string `json:"created_at"`
}

func getKeypair(ctx context.Context, c call, name string) (*keypair, error) {
	var body struct {
		Keypair keypair `json:"keypair"`
	}
	if err := keypairs.Get(ctx, c.compute, name, nil).ExtractInto(&body); err != nil {
		return nil, err
	}
	return &body.Keypair, nil
}

func (kp *keypair) owner() string {
	return fmt.Sprintf("a keypair of user %s made at %s", kp.UserID, kp.CreatedAt)
}

// clockSkew is how far apart the worker's clock and the site's may be (nova also records a
// keypair's creation to the second). Kept small: a keypair made by hand within it before an
// attempt that then died could be taken for cheops'; one of cheops' made with a clock further
// behind is taken for someone else's, which fails the replica and deletes nothing.
const clockSkew = time.Second

// keypairMine says whether a keypair the replica did not record is one an earlier attempt of it
// made without recording (its worker died between the create and the record): only when such an
// attempt began (since is set; the activity records it before calling the driver, so it precedes
// any create of its) and the site made the keypair after it. A keypair that was there before the
// replica's first unrecorded attempt is someone else's, whatever its name and key. The attempt
// making this decision looks before it creates, so its own start does not count.
func keypairMine(kp *keypair, since time.Time) bool {
	if since.IsZero() {
		return false
	}
	created, err := parseNovaTime(kp.CreatedAt)
	if err != nil {
		return false // without a creation time, nothing says it is ours
	}
	return !created.Before(since.Truncate(time.Second).Add(-clockSkew))
}

// parseNovaTime reads nova's timestamps: UTC, with or without fraction and zone.
func parseNovaTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unreadable time %q", s)
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

// keypairFind finds the keypair an unrecorded apply of the replica made: one of the declared name
// and key that the site made since that apply began (see keypairMine). Any other keypair of that
// name is someone else's, or one the replica adopted, and is not to be deleted.
func keypairFind(ctx context.Context, c call, req cheops.FindRequest, sp spec) (string, error) {
	s := sp.(*keypairSpec)
	kp, err := getKeypair(ctx, c, s.Name)
	if notFound(err) {
		return "", nil
	}
	if err != nil || strings.TrimSpace(kp.PublicKey) != strings.TrimSpace(s.PublicKey) || !keypairMine(kp, req.UnrecordedSince) {
		return "", err
	}
	return s.Name, nil
}
