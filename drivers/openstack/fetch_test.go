package openstack

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestImageSources(t *testing.T) {
	var def ImageSources
	for addr, want := range map[string]bool{
		"127.0.0.1": false, "::1": false, "169.254.169.254": false, "fe80::1": false, "0.0.0.0": false,
		"224.0.0.1": false, "::ffff:127.0.0.1": false, "10.1.2.3": true, "192.0.2.7": true, "2001:db8::1": true,
	} {
		if got := def.allows(netip.MustParseAddr(addr)); got != want {
			t.Errorf("default allows(%s) = %v, want %v", addr, got, want)
		}
	}
	nets, err := ParseNetworks([]string{"127.0.0.0/8", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	only := ImageSources{Networks: nets}
	for addr, want := range map[string]bool{"127.0.0.5": true, "192.0.2.7": true, "192.0.2.8": false, "10.1.2.3": false} {
		if got := only.allows(netip.MustParseAddr(addr)); got != want {
			t.Errorf("allows(%s) = %v, want %v", addr, got, want)
		}
	}
	if _, err := ParseNetworks([]string{"10.0.0.0/33"}); err == nil {
		t.Error("a bad network parsed")
	}
}

// The fetch client refuses a loopback address at connect time, also when a redirect leads there,
// and fetches from an allowed one.
func TestImageFetchRefusesLoopbackByDefault(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("bytes")) }))
	defer srv.Close()
	get := func(c *http.Client, url string) error {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	var refused errSourceRefused
	if err := get(ImageSources{}.client(), srv.URL); !errors.As(err, &refused) || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("default sources fetched from loopback: %v", err)
	}
	nets, _ := ParseNetworks([]string{"127.0.0.0/8"})
	if err := get(ImageSources{Networks: nets}.client(), srv.URL); err != nil {
		t.Fatalf("allowed loopback: %v", err)
	}
	other, _ := ParseNetworks([]string{"192.0.2.0/24"})
	if err := get(ImageSources{Networks: other}.client(), srv.URL); !errors.As(err, &refused) {
		t.Fatalf("a source outside the allowed networks: %v", err)
	}
}
