package openstack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"github.com/cheops-io/cheops"
)

// imageSpec is an image.image: its bytes come from URL, fetched by the worker and verified against
// Checksum (SHA-256, hex, optionally "sha256:"-prefixed) before they are uploaded. An image's bytes
// cannot change: a new URL or checksum is an immutable-field error; the name, visibility, minimums
// and the properties declared are converged.
type imageSpec struct {
	Name            string            `json:"name"`
	URL             string            `json:"url"`
	Checksum        string            `json:"checksum"`
	DiskFormat      string            `json:"diskFormat,omitempty"`
	ContainerFormat string            `json:"containerFormat,omitempty"`
	Visibility      string            `json:"visibility,omitempty"`
	MinDisk         int               `json:"minDisk,omitempty"`
	MinRAM          int               `json:"minRam,omitempty"`
	Properties      map[string]string `json:"properties,omitempty"`
}

// metaSource is the image property holding the SHA-256 of its bytes as declared.
const metaSource = "cheops_source_sha256"

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (s *imageSpec) sum() string { return strings.ToLower(strings.TrimPrefix(s.Checksum, "sha256:")) }

func (s *imageSpec) check() error {
	if err := required("spec.name", s.Name); err != nil {
		return err
	}
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &cheops.FieldError{Field: "spec.url", Message: "must be an http or https URL the workers can reach"}
	}
	if !sha256Hex.MatchString(s.sum()) {
		return &cheops.FieldError{Field: "spec.checksum", Message: "must be the image's SHA-256 in hex (sha256:…)"}
	}
	switch s.Visibility {
	case "", "public", "private", "shared", "community":
	default:
		return &cheops.FieldError{Field: "spec.visibility", Message: "must be public, private, shared or community"}
	}
	for k := range s.Properties {
		if strings.HasPrefix(k, "cheops_") {
			return &cheops.FieldError{Field: "spec.properties." + k, Message: "the cheops_ prefix is reserved"}
		}
	}
	return nil
}

func (s *imageSpec) references() []cheops.Reference { return nil }

func (s *imageSpec) apply(ctx context.Context, c call, req cheops.ApplyRequest) (string, error) {
	for {
		img, err := findImage(ctx, c, req.ResourceID)
		if err != nil {
			return "", err
		}
		if img == nil {
			// The bytes are fetched and checked before the image is made, so a URL that fails
			// or bytes that do not match leave nothing on the site.
			f, err := s.fetch(ctx, c)
			if err != nil {
				return "", err
			}
			img, err = s.create(ctx, c, req.ResourceID)
			if err == nil {
				err = imagedata.Upload(ctx, c.image, img.ID, f).ExtractErr()
			}
			f.close()
			if err != nil {
				return "", err
			}
			continue // look at it again: active, or still being saved
		}
		if have, _ := img.Properties[metaSource].(string); have != s.sum() {
			return "", permanent("immutable fields spec.url/checksum: image %s on the site holds bytes with SHA-256 %s; declare a new image instead", img.ID, have)
		}
		switch img.Status {
		case images.ImageStatusQueued:
			if err := s.upload(ctx, c, img.ID); err != nil {
				return "", err
			}
		case images.ImageStatusSaving, images.ImageStatusUploading, images.ImageStatusImporting:
			// Another attempt's upload is under way (or died with its worker: glance puts the
			// image back to queued then).
		case images.ImageStatusActive:
			return img.ID, s.converge(ctx, c, img)
		case images.ImageStatusKilled, images.ImageStatusDeleted, images.ImageStatusPendingDelete:
			// A failed upload: start again with a new image.
			if err := images.Delete(ctx, c.image, img.ID).ExtractErr(); err != nil && !notFound(err) {
				return "", err
			}
			continue
		default:
			return "", permanent("image %s is %s on the site", img.ID, img.Status)
		}
		if err := c.wait(ctx, "image "+img.ID+" to become active", func() (bool, error) {
			i, err := images.Get(ctx, c.image, img.ID).Extract()
			if err != nil {
				return false, err
			}
			return i.Status != images.ImageStatusSaving && i.Status != images.ImageStatusUploading && i.Status != images.ImageStatusImporting, nil
		}); err != nil {
			return "", err
		}
	}
}

func (s *imageSpec) create(ctx context.Context, c call, resourceID string) (*images.Image, error) {
	props := map[string]string{metaSource: s.sum(), metaResource: resourceID}
	for k, v := range s.Properties {
		props[k] = v
	}
	opts := images.CreateOpts{Name: s.Name, Tags: []string{tag(resourceID)}, DiskFormat: orElse(s.DiskFormat, "raw"),
		ContainerFormat: orElse(s.ContainerFormat, "bare"), MinDisk: s.MinDisk, MinRAM: s.MinRAM, Properties: props}
	if s.Visibility != "" {
		v := images.ImageVisibility(s.Visibility)
		opts.Visibility = &v
	}
	return images.Create(ctx, c.image, opts).Extract()
}

// upload fetches the bytes, verifies them, and uploads them to an image already made (queued).
func (s *imageSpec) upload(ctx context.Context, c call, id string) error {
	f, err := s.fetch(ctx, c)
	if err != nil {
		return err
	}
	defer f.close()
	return imagedata.Upload(ctx, c.image, id, f).ExtractErr()
}

// fetched is an image's bytes, fetched and verified, in a temporary file read from its start.
type fetched struct{ *os.File }

func (f fetched) close() {
	f.Close()
	os.Remove(f.Name())
}

// fetch fetches the bytes into a temporary file and verifies their SHA-256 against the spec's.
func (s *imageSpec) fetch(ctx context.Context, c call) (fetched, error) {
	tmp, err := os.CreateTemp("", "cheops-image-*")
	if err != nil {
		return fetched{}, err
	}
	f := fetched{tmp}
	if err := s.fetchInto(ctx, c, f.File); err != nil {
		f.close()
		return fetched{}, err
	}
	return f, nil
}

func (s *imageSpec) fetchInto(ctx context.Context, c call, f *os.File) error {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return permanent("spec.url: %v", err)
	}
	resp, err := c.fetch.Do(hreq)
	var refused errSourceRefused
	if errors.As(err, &refused) {
		return cheops.Classify(cheops.Permanent, refused)
	}
	if err != nil {
		return cheops.Classify(cheops.Transient, fmt.Errorf("fetching spec.url: %w", err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		class := cheops.Transient
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			class = cheops.Permanent
		}
		return cheops.Classify(class, fmt.Errorf("fetching spec.url %s: %s", s.URL, resp.Status))
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), resp.Body); err != nil {
		return cheops.Classify(cheops.Transient, fmt.Errorf("fetching spec.url: %w", err))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != s.sum() {
		return permanent("spec.checksum: %s has SHA-256 %s, not %s", s.URL, got, s.sum())
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

func (s *imageSpec) converge(ctx context.Context, c call, img *images.Image) error {
	var patch images.UpdateOpts
	if img.Name != s.Name {
		patch = append(patch, images.ReplaceImageName{NewName: s.Name})
	}
	if img.MinDiskGigabytes != s.MinDisk {
		patch = append(patch, images.ReplaceImageMinDisk{NewMinDisk: s.MinDisk})
	}
	if img.MinRAMMegabytes != s.MinRAM {
		patch = append(patch, images.ReplaceImageMinRam{NewMinRam: s.MinRAM})
	}
	if s.Visibility != "" && string(img.Visibility) != s.Visibility {
		patch = append(patch, images.UpdateVisibility{Visibility: images.ImageVisibility(s.Visibility)})
	}
	for k, v := range s.Properties {
		have, ok := img.Properties[k]
		switch {
		case !ok:
			patch = append(patch, images.UpdateImageProperty{Op: images.AddOp, Name: k, Value: v})
		case have != v:
			patch = append(patch, images.UpdateImageProperty{Op: images.ReplaceOp, Name: k, Value: v})
		}
	}
	if len(patch) == 0 {
		return nil
	}
	_, err := images.Update(ctx, c.image, img.ID, patch).Extract()
	return err
}

func orElse(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func findImage(ctx context.Context, c call, resourceID string) (*images.Image, error) {
	pages, err := images.List(c.image, images.ListOpts{Tags: []string{tag(resourceID)}}).AllPages(ctx)
	if err != nil {
		return nil, err
	}
	all, err := images.ExtractImages(pages)
	if err != nil || len(all) == 0 {
		return nil, err
	}
	return &all[0], nil
}

func imageExists(ctx context.Context, c call, id string) (bool, error) {
	_, err := images.Get(ctx, c.image, id).Extract()
	if notFound(err) {
		return false, nil
	}
	return err == nil, err
}

func imageRemove(ctx context.Context, c call, id string) error {
	return images.Delete(ctx, c.image, id).ExtractErr()
}

func imageFind(ctx context.Context, c call, req cheops.FindRequest, _ spec) (string, error) {
	resourceID := req.ResourceID
	img, err := findImage(ctx, c, resourceID)
	if img == nil {
		return "", err
	}
	return img.ID, nil
}
