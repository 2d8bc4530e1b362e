package openstack

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ImageSources says which addresses a worker may fetch an image's bytes from. Whoever declares an
// image chooses its URL, so without a limit the worker would fetch from its own loopback or a
// cloud's metadata address on their behalf.
type ImageSources struct {
	// Networks, when set, are the only networks image URLs may reach; when empty, any address but
	// loopback, link-local, unspecified and multicast ones may be reached.
	Networks []netip.Prefix
}

// allows reports whether an image may be fetched from addr.
func (s ImageSources) allows(addr netip.Addr) bool {
	addr = addr.Unmap()
	if len(s.Networks) > 0 {
		for _, p := range s.Networks {
			if p.Contains(addr) {
				return true
			}
		}
		return false
	}
	return !(addr.IsLoopback() || addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() ||
		addr.IsInterfaceLocalMulticast() || addr.IsMulticast() || addr.IsUnspecified())
}

// ParseNetworks reads a comma-separated list of networks ("10.0.0.0/8,192.0.2.7") for ImageSources.
func ParseNetworks(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a network (10.0.0.0/8) nor an address", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// errSourceRefused is returned when an image URL resolves to an address the sources refuse.
type errSourceRefused struct{ addr string }

func (e errSourceRefused) Error() string {
	return "spec.url reaches " + e.addr + ", which the worker's operator does not allow images to be fetched from (--image-networks)"
}

// client returns an HTTP client that checks every address it connects to, after name resolution
// and on every redirect, so neither a DNS answer nor a redirect can lead it elsewhere.
func (s ImageSources) client() *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		if !s.allows(ap.Addr()) {
			return errSourceRefused{ap.Addr().String()}
		}
		return nil
	}}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil // a proxy would connect on our behalf, past the check
	transport.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: transport}
}
