package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/applicationcredentials"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
	"github.com/cheops-io/cheops/internal/freeport"
	"github.com/cheops-io/cheops/test/harness"
)

// runID makes the names of OpenStack objects unique to one run: OpenStack's databases outlive a
// run, and keypair and flavor names are unique on a site.
var runID = fmt.Sprintf("%06x", time.Now().UnixNano()&0xffffff)

// osName is an OpenStack object name unique to this run.
func osName(base string) string { return base + "-" + runID }

// The OpenStack sites TestMain registers: os-1 is RegionOne with a user and password, os-2 is
// RegionTwo through a clouds.yaml file on the worker's host.
var osSites = []string{"os-1", "os-2"}

var osSitesOnce sync.Once

// needOpenStack waits for TestMain's OpenStack bring-up and registers the OpenStack sites once. A
// failed bring-up fails the test: nothing is skipped.
func needOpenStack(t *testing.T) {
	t.Helper()
	<-env.osReady
	osSitesOnce.Do(func() {
		if env.osErr == nil {
			env.osErr = registerOpenStackSites()
		}
	})
	if env.osErr != nil {
		t.Fatalf("OpenStack: %v", env.osErr)
	}
}

func registerOpenStackSites() error {
	e := env.os.Env
	body := map[string]any{"name": "os-1", "driver": "openstack", "labels": map[string]string{"cloud": "lab"},
		"openstack": map[string]any{"authURL": e["OS_AUTH_URL"], "region": env.os.Regions[0],
			"username": e["OS_USERNAME"], "password": e["OS_PASSWORD"], "projectName": e["OS_PROJECT_NAME"]}}
	if code, out := call(http.MethodPost, "/v1/sites", body, nil); code != http.StatusCreated {
		return fmt.Errorf("register os-1: %d %s", code, out)
	}
	clouds := filepath.Join(env.cheops.SiteFilesDir, "clouds.yaml")
	yaml := fmt.Sprintf(`clouds:
  lab:
    auth:
      auth_url: %s
      username: %s
      password: %s
      project_name: %s
      user_domain_name: Default
      project_domain_name: Default
    region_name: %s
`, e["OS_AUTH_URL"], e["OS_USERNAME"], e["OS_PASSWORD"], e["OS_PROJECT_NAME"], env.os.Regions[1])
	if err := os.WriteFile(clouds, []byte(yaml), 0o600); err != nil {
		return err
	}
	body = map[string]any{"name": "os-2", "driver": "openstack", "labels": map[string]string{"cloud": "lab"},
		"openstack": map[string]any{"cloudsFile": clouds, "cloud": "lab"}}
	if code, out := call(http.MethodPost, "/v1/sites", body, nil); code != http.StatusCreated {
		return fmt.Errorf("register os-2: %d %s", code, out)
	}
	return nil
}

// region is one region's service clients, as the admin, for checking what cheops did.
type region struct {
	name                    string
	compute, network, image *gophercloud.ServiceClient
}

// adminClient is the OpenStack admin's authenticated provider client.
func adminClient(t *testing.T) *gophercloud.ProviderClient {
	t.Helper()
	e := env.os.Env
	pc, err := openstack.AuthenticatedClient(context.Background(), gophercloud.AuthOptions{IdentityEndpoint: e["OS_AUTH_URL"],
		Username: e["OS_USERNAME"], Password: e["OS_PASSWORD"], DomainName: "Default",
		Scope: &gophercloud.AuthScope{ProjectName: e["OS_PROJECT_NAME"], DomainName: "Default"}})
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// regions returns clients for os-1's and os-2's regions.
func regions(t *testing.T) []region {
	t.Helper()
	pc := adminClient(t)
	var out []region
	var err error
	for _, name := range env.os.Regions {
		eo := gophercloud.EndpointOpts{Region: name}
		r := region{name: name}
		if r.compute, err = openstack.NewComputeV2(pc, eo); err != nil {
			t.Fatal(err)
		}
		r.compute.Microversion = "2.55"
		if r.network, err = openstack.NewNetworkV2(pc, eo); err != nil {
			t.Fatal(err)
		}
		if r.image, err = openstack.NewImageV2(pc, eo); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// osResource declares an OpenStack resource on the given sites, with policy when not nil.
func osResource(t *testing.T, name, typ string, spec map[string]any, policy *cheops.Policy, sites ...string) resource {
	t.Helper()
	return post(t, client.ResourceRequest{Name: name, Driver: cheops.DriverOpenStack,
		Manifest: raw(map[string]any{"type": typ, "spec": spec}), Scope: onSites(sites...), Policy: policy})
}

func osUpdate(t *testing.T, r resource, typ string, spec map[string]any) resource {
	t.Helper()
	return put(t, r.ID, client.ResourceRequest{Name: r.Name, Driver: cheops.DriverOpenStack,
		Manifest: raw(map[string]any{"type": typ, "spec": spec}), Scope: onSites(osSites...)})
}

// imageServer serves image bytes the worker downloads; it returns the URL and the SHA-256.
func imageServer(t *testing.T, content string) (string, string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(content))
	}))
	t.Cleanup(srv.Close)
	sum := sha256.Sum256([]byte(content))
	return srv.URL + "/disk.img", hex.EncodeToString(sum[:])
}

// sshKey is a well-formed ed25519 public key (nova parses what it is given), one per n.
func sshKey(n int) string {
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(n + 1)}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	var wire []byte
	for _, part := range [][]byte{[]byte("ssh-ed25519"), pub} {
		wire = binary.BigEndian.AppendUint32(wire, uint32(len(part)))
		wire = append(wire, part...)
	}
	return fmt.Sprintf("ssh-ed25519 %s cheops-e2e-%d", base64.StdEncoding.EncodeToString(wire), n)
}

// eachRegion runs check on each region with the local ID cheops recorded for the site.
func eachRegion(t *testing.T, r resource, check func(reg region, localID string)) {
	t.Helper()
	regs := regions(t)
	for i, site := range osSites {
		rep, ok := r.Replica(site)
		if !ok || rep.LocalID == "" {
			t.Fatalf("%s: no replica with a local ID on %s: %+v", r.Name, site, r.Replicas)
		}
		check(regs[i], rep.LocalID)
	}
}

func TestOpenStackResourceTypesAcrossTwoRegions(t *testing.T) {
	needOpenStack(t)
	ctx := context.Background()
	imgURL, imgSum := imageServer(t, strings.Repeat("cheops image bytes\n", 1000))

	kp := osResource(t, "e2e-kp", "compute.keypair", map[string]any{"name": osName("e2e-kp"), "publicKey": sshKey(0)}, nil, osSites...)
	flavorSpec := map[string]any{"name": osName("e2e-small"), "vcpus": 1, "ram": 128, "disk": 1, "extraSpecs": map[string]string{"hw:cpu_policy": "shared"}}
	fl := osResource(t, "e2e-flavor", "compute.flavor", flavorSpec, nil, osSites...)
	sgSpec := map[string]any{"name": "e2e-web", "rules": []map[string]any{
		{"direction": "ingress", "protocol": "tcp", "portRangeMin": 80, "portRangeMax": 80, "remoteIPPrefix": "0.0.0.0/0"},
		{"direction": "ingress", "protocol": "tcp", "portRangeMin": 22, "portRangeMax": 22, "remoteIPPrefix": "10.0.0.0/8"}}}
	sg := osResource(t, "e2e-sg", "network.security_group", sgSpec, nil, osSites...)
	netSpec := map[string]any{"name": "e2e-net", "subnets": []map[string]any{
		{"name": "a", "cidr": "10.10.1.0/24"}, {"name": "b", "cidr": "10.10.2.0/24", "dnsNameservers": []string{"10.10.2.53"}}}}
	nw := osResource(t, "e2e-net", "network.network", netSpec, nil, osSites...)
	imgSpec := map[string]any{"name": "e2e-image", "url": imgURL, "checksum": "sha256:" + imgSum, "properties": map[string]string{"os_distro": "cirros"}}
	img := osResource(t, "e2e-image", "image.image", imgSpec, nil, osSites...)

	kp, fl, sg, nw, img = waitReady(t, kp.ID, 1), waitReady(t, fl.ID, 1), waitReady(t, sg.ID, 1), waitReady(t, nw.ID, 1), waitReady(t, img.ID, 1)

	eachRegion(t, kp, func(reg region, id string) {
		k, err := keypairs.Get(ctx, reg.compute, id, nil).Extract()
		if err != nil || k.PublicKey != sshKey(0) {
			t.Errorf("%s: keypair %s: %v %+v", reg.name, id, err, k)
		}
	})
	eachRegion(t, fl, func(reg region, id string) {
		f, err := flavors.Get(ctx, reg.compute, id).Extract()
		if err != nil || f.Name != osName("e2e-small") || f.VCPUs != 1 || f.RAM != 128 || f.Disk != 1 {
			t.Errorf("%s: flavor %s: %v %+v", reg.name, id, err, f)
		}
		if id != fl.ID {
			t.Errorf("%s: flavor ID %s, want the resource ID %s", reg.name, id, fl.ID)
		}
		spec, _ := flavors.ListExtraSpecs(ctx, reg.compute, id).Extract()
		if spec["hw:cpu_policy"] != "shared" {
			t.Errorf("%s: extra specs %v", reg.name, spec)
		}
	})
	sgRules := func(reg region, id string) []string {
		pages, err := rules.List(reg.network, rules.ListOpts{SecGroupID: id}).AllPages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all, _ := rules.ExtractRules(pages)
		var out []string
		for _, r := range all {
			out = append(out, fmt.Sprintf("%s/%s/%d/%s", r.Direction, r.Protocol, r.PortRangeMin, r.RemoteIPPrefix))
		}
		return out
	}
	eachRegion(t, sg, func(reg region, id string) {
		g, err := groups.Get(ctx, reg.network, id).Extract()
		if err != nil || g.Name != "e2e-web" {
			t.Errorf("%s: security group %s: %v", reg.name, id, err)
		}
		if got := strings.Join(sortedCopy(sgRules(reg, id)), " "); got != "ingress/tcp/22/10.0.0.0/8 ingress/tcp/80/0.0.0.0/0" {
			t.Errorf("%s: rules %s (the default egress rules must be gone too)", reg.name, got)
		}
	})
	subnetsOf := func(reg region, id string) map[string]subnets.Subnet {
		pages, err := subnets.List(reg.network, subnets.ListOpts{NetworkID: id}).AllPages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all, _ := subnets.ExtractSubnets(pages)
		m := map[string]subnets.Subnet{}
		for _, s := range all {
			m[s.Name] = s
		}
		return m
	}
	netIDs := map[string]bool{}
	eachRegion(t, nw, func(reg region, id string) {
		netIDs[id] = true
		n, err := networks.Get(ctx, reg.network, id).Extract()
		if err != nil || n.Name != "e2e-net" {
			t.Errorf("%s: network %s: %v", reg.name, id, err)
		}
		sn := subnetsOf(reg, id)
		if len(sn) != 2 || sn["a"].CIDR != "10.10.1.0/24" || sn["b"].DNSNameservers[0] != "10.10.2.53" {
			t.Errorf("%s: subnets %+v", reg.name, sn)
		}
	})
	if len(netIDs) != 2 {
		t.Errorf("the two regions' networks have the same ID: %v", netIDs)
	}
	eachRegion(t, img, func(reg region, id string) {
		i, err := images.Get(ctx, reg.image, id).Extract()
		if err != nil || i.Status != images.ImageStatusActive || i.SizeBytes != 19000 || i.Properties["os_distro"] != "cirros" {
			t.Errorf("%s: image %s: %v %+v", reg.name, id, err, i)
		}
	})

	// Updates: what can change in place does; what cannot is a permanent, named failure.
	flavorSpec["extraSpecs"] = map[string]string{"hw:mem_page_size": "small"}
	flavorSpec["description"] = "small, updated"
	fl = waitReady(t, osUpdate(t, fl, "compute.flavor", flavorSpec).ID, 2)
	sgSpec["rules"] = []map[string]any{
		{"direction": "ingress", "protocol": "tcp", "portRangeMin": 443, "portRangeMax": 443, "remoteIPPrefix": "0.0.0.0/0"},
		{"direction": "ingress", "protocol": "tcp", "portRangeMin": 22, "portRangeMax": 22, "remoteIPPrefix": "10.0.0.0/8"}}
	sg = waitReady(t, osUpdate(t, sg, "network.security_group", sgSpec).ID, 2)
	netSpec["name"] = "e2e-net-renamed"
	netSpec["subnets"] = []map[string]any{{"name": "b", "cidr": "10.10.2.0/24"}, {"name": "c", "cidr": "10.10.3.0/24"}}
	nw = waitReady(t, osUpdate(t, nw, "network.network", netSpec).ID, 2)
	imgSpec["name"] = "e2e-image-renamed"
	imgSpec["properties"] = map[string]string{"os_distro": "debian"}
	img = waitReady(t, osUpdate(t, img, "image.image", imgSpec).ID, 2)
	kp = osUpdate(t, kp, "compute.keypair", map[string]any{"name": osName("e2e-kp"), "publicKey": sshKey(1)})

	eachRegion(t, fl, func(reg region, id string) {
		f, _ := flavors.Get(ctx, reg.compute, id).Extract()
		spec, _ := flavors.ListExtraSpecs(ctx, reg.compute, id).Extract()
		if f == nil || f.Description != "small, updated" || len(spec) != 1 || spec["hw:mem_page_size"] != "small" {
			t.Errorf("%s: flavor after update: %+v %v", reg.name, f, spec)
		}
	})
	eachRegion(t, sg, func(reg region, id string) {
		if got := strings.Join(sortedCopy(sgRules(reg, id)), " "); got != "ingress/tcp/22/10.0.0.0/8 ingress/tcp/443/0.0.0.0/0" {
			t.Errorf("%s: rules after update %s", reg.name, got)
		}
	})
	eachRegion(t, nw, func(reg region, id string) {
		n, _ := networks.Get(ctx, reg.network, id).Extract()
		sn := subnetsOf(reg, id)
		if n == nil || n.Name != "e2e-net-renamed" || len(sn) != 2 || sn["c"].CIDR != "10.10.3.0/24" || len(sn["b"].DNSNameservers) != 0 {
			t.Errorf("%s: network after update: %+v %+v", reg.name, n, sn)
		}
	})
	eachRegion(t, img, func(reg region, id string) {
		i, _ := images.Get(ctx, reg.image, id).Extract()
		if i == nil || i.Name != "e2e-image-renamed" || i.Properties["os_distro"] != "debian" {
			t.Errorf("%s: image after update: %+v", reg.name, i)
		}
	})
	kp = waitFor(t, kp.ID, time.Minute, "Failed on both sites", func(r resource, _ int) bool {
		a, _ := r.Replica("os-1")
		b, _ := r.Replica("os-2")
		return a.State == "Failed" && b.State == "Failed"
	})
	if rep, _ := kp.Replica("os-1"); !strings.Contains(rep.Message, "immutable field spec.publicKey") || rep.Attempts != 1 {
		t.Errorf("keypair update: %+v, want a permanent immutable-field failure after one attempt", rep)
	}

	// Deletion removes every replica; nothing is left on either region.
	for _, r := range []resource{kp, fl, sg, nw, img} {
		remove(t, r.ID)
	}
	privateFlavorAccess(t)
	for i, reg := range regions(t) {
		if _, err := keypairs.Get(ctx, reg.compute, osName("e2e-kp"), nil).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Errorf("%s: keypair still there: %v", reg.name, err)
		}
		if _, err := flavors.Get(ctx, reg.compute, fl.ID).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Errorf("%s: flavor still there: %v", reg.name, err)
		}
		if _, err := groups.Get(ctx, reg.network, sg.LocalIDs()[osSites[i]]).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Errorf("%s: security group still there: %v", reg.name, err)
		}
		if _, err := networks.Get(ctx, reg.network, nw.LocalIDs()[osSites[i]]).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Errorf("%s: network still there: %v", reg.name, err)
		}
		if i, err := images.Get(ctx, reg.image, img.LocalIDs()[osSites[i]]).Extract(); err == nil && i.Status != images.ImageStatusDeleted {
			t.Errorf("%s: image still there: %+v", reg.name, i)
		}
	}
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// serverStack declares a keypair, a security group, a network, a flavor and an image on both
// regions, all at once, and a server that names each of them as a cheops resource.
func serverStack(t *testing.T, prefix string, serverPolicy *cheops.Policy, imageSites, serverSites []string) (deps []resource, server resource) {
	t.Helper()
	imgURL, imgSum := imageServer(t, "tiny disk "+prefix)
	deps = append(deps,
		osResource(t, prefix+"-kp", "compute.keypair", map[string]any{"name": osName(prefix + "-kp"), "publicKey": sshKey(0)}, nil, osSites...),
		osResource(t, prefix+"-sg", "network.security_group", map[string]any{"name": prefix + "-sg", "rules": []map[string]any{
			{"direction": "ingress", "protocol": "icmp"}}}, nil, osSites...),
		osResource(t, prefix+"-net", "network.network", map[string]any{"name": prefix + "-net", "subnets": []map[string]any{
			{"name": "main", "cidr": "192.168.50.0/24"}}}, nil, osSites...),
		osResource(t, prefix+"-flavor", "compute.flavor", map[string]any{"name": osName(prefix + "-flavor"), "vcpus": 1, "ram": 64, "disk": 0}, nil, osSites...),
		osResource(t, prefix+"-image", "image.image", map[string]any{"name": prefix + "-image", "url": imgURL, "checksum": imgSum}, nil, imageSites...),
	)
	server = osResource(t, prefix+"-vm", "compute.server", map[string]any{"name": prefix + "-vm",
		"flavor": map[string]any{"resource": prefix + "-flavor"}, "image": map[string]any{"resource": prefix + "-image"},
		"networks": []map[string]any{{"resource": prefix + "-net"}}, "keypair": map[string]any{"resource": prefix + "-kp"},
		"securityGroups": []map[string]any{{"resource": prefix + "-sg"}}, "metadata": map[string]string{"role": "web"}},
		serverPolicy, serverSites...)
	return deps, server
}

// serversTagged lists the servers carrying a resource's tag on a region.
func serversTagged(t *testing.T, reg region, resourceID string) []servers.Server {
	t.Helper()
	pages, err := servers.List(reg.compute, servers.ListOpts{Tags: "cheops:" + resourceID}).AllPages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	all, err := servers.ExtractServers(pages)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func TestOpenStackServerOnEachRegionsOwnNetwork(t *testing.T) {
	needOpenStack(t)
	ctx := context.Background()
	deps, vm := serverStack(t, "web", nil, osSites, osSites)
	// The server was declared with its dependencies: it waits for them on each site, then boots.
	vm = waitReady(t, vm.ID, 1)
	for i := range deps {
		deps[i] = waitReady(t, deps[i].ID, 1)
	}
	netIDs := deps[2].LocalIDs()
	regs := regions(t)
	for i, site := range osSites {
		reg := regs[i]
		id := vm.LocalIDs()[site]
		srv, err := servers.Get(ctx, reg.compute, id).Extract()
		if err != nil {
			t.Fatalf("%s: server %s: %v", reg.name, id, err)
		}
		if srv.Status != "ACTIVE" || srv.KeyName != osName("web-kp") || srv.Metadata["role"] != "web" || srv.Metadata["cheops_resource_id"] != vm.ID {
			t.Errorf("%s: server %+v", reg.name, srv)
		}
		pages, err := ports.List(reg.network, ports.ListOpts{DeviceID: id}).AllPages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ps, _ := ports.ExtractPorts(pages)
		if len(ps) != 1 || ps[0].NetworkID != netIDs[site] {
			t.Errorf("%s: server ports %+v, want one on network %s (this region's e2e network)", reg.name, ps, netIDs[site])
		}
		if len(ps) == 1 && (len(ps[0].SecurityGroups) != 1 || ps[0].SecurityGroups[0] != deps[1].LocalIDs()[site]) {
			t.Errorf("%s: port security groups %v, want [%s]", reg.name, ps[0].SecurityGroups, deps[1].LocalIDs()[site])
		}
		if n := len(serversTagged(t, reg, vm.ID)); n != 1 {
			t.Errorf("%s: %d servers for the resource, want 1", reg.name, n)
		}
	}
	if netIDs["os-1"] == netIDs["os-2"] {
		t.Errorf("both regions' networks have ID %s", netIDs["os-1"])
	}
	// Deleting the server and its dependencies at once: the network waits for the server's port.
	for _, r := range append([]resource{vm}, deps...) {
		call(http.MethodDelete, "/v1/resources/"+r.ID, nil, nil)
	}
	for _, r := range append([]resource{vm}, deps...) {
		waitGone(t, r.ID)
	}
	for i, reg := range regs {
		if n := len(serversTagged(t, reg, vm.ID)); n != 0 {
			t.Errorf("%s: %d servers left", reg.name, n)
		}
		if _, err := networks.Get(ctx, reg.network, netIDs[osSites[i]]).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Errorf("%s: network left: %v", reg.name, err)
		}
	}
}

func TestOpenStackTransactionalServerWithImageMissingOnOneRegion(t *testing.T) {
	needOpenStack(t)
	// The image only lives on os-1, so the server can never exist on os-2: the transaction fails
	// there, and the server already booted on os-1 is deleted.
	policy := &cheops.Policy{Consistency: cheops.Transactional, Timeout: cheops.Duration(3 * time.Minute)}
	deps, vm := serverStack(t, "tx", policy, []string{"os-1"}, osSites)
	vm = waitFor(t, vm.ID, 3*time.Minute, "RolledBack", func(r resource, _ int) bool {
		return r.State == "RolledBack" && r.Rollback != nil && r.Rollback.Done
	})
	if !strings.Contains(vm.Rollback.Reasons["os-2"], "not in its scope") {
		t.Errorf("rollback reasons %v, want os-2's naming the image out of scope", vm.Rollback.Reasons)
	}
	for _, reg := range regions(t) {
		if s := serversTagged(t, reg, vm.ID); len(s) != 0 {
			t.Errorf("%s: servers left after the rollback: %+v", reg.name, s)
		}
	}
	for _, r := range append([]resource{vm}, deps...) {
		call(http.MethodDelete, "/v1/resources/"+r.ID, nil, nil)
	}
	for _, r := range append([]resource{vm}, deps...) {
		waitGone(t, r.ID)
	}
}

func TestKubernetesAndOpenStackSideBySide(t *testing.T) {
	needOpenStack(t)
	ctx := context.Background()
	cm := create(t, "side-cm", configMap("side-cm", "v1"), directSites...)
	kp := osResource(t, "side-kp", "compute.keypair", map[string]any{"name": osName("side-kp"), "publicKey": sshKey(1)}, nil, osSites...)
	nw := osResource(t, "side-net", "network.network", map[string]any{"name": "side-net"}, nil, osSites...)
	cm, kp, nw = waitReady(t, cm.ID, 1), waitReady(t, kp.ID, 1), waitReady(t, nw.ID, 1)
	for i := range directSites {
		wantValue(t, i, "side-cm", "v1", "1")
	}
	eachRegion(t, nw, func(reg region, id string) {
		if _, err := networks.Get(ctx, reg.network, id).Extract(); err != nil {
			t.Errorf("%s: %v", reg.name, err)
		}
	})
	// A resource only ever goes to sites of its driver: named, it is refused; by selector, the
	// other kind of site is left out.
	code, out := call(http.MethodPost, "/v1/resources", map[string]any{"name": "side-wrong", "manifest": configMap("side-wrong", "x"),
		"scope": map[string]any{"sites": []string{"site-1", "os-1"}}}, nil)
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(out), "os-1 is a openstack site") {
		t.Errorf("kubernetes resource on an openstack site: %d %s", code, out)
	}
	// Every site matches region!=nowhere, the kube-apiservers included.
	sel := post(t, client.ResourceRequest{Name: "side-all", Driver: cheops.DriverOpenStack, Manifest: raw(map[string]any{"type": "compute.keypair",
		"spec": map[string]any{"name": osName("side-all"), "publicKey": sshKey(0)}}), Scope: &cheops.Scope{Selector: "region!=nowhere"}})
	sel = waitReady(t, sel.ID, 1)
	if got := slices.Sorted(maps.Keys(sel.LocalIDs())); strings.Join(got, ",") != "os-1,os-2" {
		t.Errorf("an openstack resource selecting every site landed on %v", got)
	}
	for _, r := range []resource{cm, kp, nw, sel} {
		remove(t, r.ID)
	}
}

// The worker is SIGKILLed after OpenStack has made an object and before the worker learns its ID:
// the response to the create call is held by a proxy in front of the services. After a restart the
// apply is retried, finds the object by its cheops mark, and adopts it: exactly one per region.
func TestOpenStackWorkerKilledBetweenCreateAndRecord(t *testing.T) {
	needOpenStack(t)
	ctx := context.Background()
	proxy, err := harness.NewOpenStackProxy(env.os.Env["OS_AUTH_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	e := env.os.Env
	sites := []string{"osx-1", "osx-2"}
	for i, name := range sites {
		body := map[string]any{"name": name, "driver": "openstack", "openstack": map[string]any{"authURL": proxy.AuthURL,
			"region": env.os.Regions[i], "username": e["OS_USERNAME"], "password": e["OS_PASSWORD"], "projectName": e["OS_PROJECT_NAME"]}}
		if code, out := call(http.MethodPost, "/v1/sites", body, nil); code != http.StatusCreated {
			t.Fatalf("register %s: %d %s", name, code, out)
		}
		defer call(http.MethodDelete, "/v1/sites/"+name+"?force=true", nil, nil)
	}
	imgURL, imgSum := imageServer(t, "crash window disk")
	flavor := osResource(t, "cx-flavor", "compute.flavor", map[string]any{"name": osName("cx-flavor"), "vcpus": 1, "ram": 64, "disk": 0}, nil, sites...)
	image := osResource(t, "cx-image", "image.image", map[string]any{"name": "cx-image", "url": imgURL, "checksum": imgSum}, nil, sites...)
	flavor, image = waitReady(t, flavor.ID, 1), waitReady(t, image.ID, 1)

	crash := func(what string, match func(*http.Request) bool, declare func() resource) resource {
		t.Helper()
		reached := proxy.Hold(match)
		r := declare()
		select {
		case msg := <-reached:
			t.Logf("%s: OpenStack answered %s; killing the worker before it hears of it", what, msg)
		case <-time.After(2 * time.Minute):
			t.Fatalf("%s: no create call reached OpenStack", what)
		}
		env.cheops.Worker.Kill()
		if err := env.cheops.StartWorker(); err != nil {
			t.Fatal(err)
		}
		return waitReady(t, r.ID, 1)
	}
	isPost := func(suffix string) func(*http.Request) bool {
		return func(r *http.Request) bool {
			return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, suffix)
		}
	}

	// A network: neutron's mark is the description the create call sets.
	nw := crash("network", isPost("/v2.0/networks"), func() resource {
		return osResource(t, "cx-net", "network.network", map[string]any{"name": osName("cx-net"), "subnets": []map[string]any{
			{"name": "s", "cidr": "192.168.60.0/24"}}}, nil, sites...)
	})
	regs := regions(t)
	for i, reg := range regs {
		pages, err := networks.List(reg.network, networks.ListOpts{Name: osName("cx-net")}).AllPages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all, _ := networks.ExtractNetworks(pages)
		if len(all) != 1 || all[0].ID != nw.LocalIDs()[sites[i]] {
			t.Errorf("%s: %d networks named cx-net (%+v), want exactly the one cheops records, %s", reg.name, len(all), all, nw.LocalIDs()[sites[i]])
		}
	}

	// A server: nova's mark is the tag the create call sets.
	vm := crash("server", isPost("/servers"), func() resource {
		return osResource(t, "cx-vm", "compute.server", map[string]any{"name": "cx-vm", "flavor": map[string]any{"resource": "cx-flavor"},
			"image": map[string]any{"resource": "cx-image"}, "networks": []map[string]any{{"resource": "cx-net"}}}, nil, sites...)
	})
	for i, reg := range regs {
		all := serversTagged(t, reg, vm.ID)
		if len(all) != 1 || all[0].ID != vm.LocalIDs()[sites[i]] || all[0].Status != "ACTIVE" {
			t.Errorf("%s: servers for the resource %+v, want exactly the one cheops records, %s, ACTIVE", reg.name, all, vm.LocalIDs()[sites[i]])
		}
	}
	for _, r := range []resource{vm, nw, image, flavor} {
		call(http.MethodDelete, "/v1/resources/"+r.ID, nil, nil)
	}
	for _, r := range []resource{vm, nw, image, flavor} {
		waitGone(t, r.ID)
	}
}

// A site that authenticates with an application credential works like one with a password.
func TestOpenStackApplicationCredentialSite(t *testing.T) {
	needOpenStack(t)
	ctx := context.Background()
	e := env.os.Env
	pc := adminClient(t)
	user, err := pc.GetAuthResult().(tokens.CreateResult).ExtractUser()
	if err != nil {
		t.Fatal(err)
	}
	identity, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatal(err)
	}
	ac, err := applicationcredentials.Create(ctx, identity, user.ID, applicationcredentials.CreateOpts{Name: osName("cheops-e2e")}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	defer applicationcredentials.Delete(ctx, identity, user.ID, ac.ID)
	body := map[string]any{"name": "os-ac", "driver": "openstack", "openstack": map[string]any{"authURL": e["OS_AUTH_URL"],
		"region": env.os.Regions[1], "applicationCredentialID": ac.ID, "applicationCredentialSecret": ac.Secret}}
	if code, out := call(http.MethodPost, "/v1/sites", body, nil); code != http.StatusCreated || strings.Contains(string(out), ac.Secret) {
		t.Fatalf("register os-ac: %d %s", code, out)
	}
	defer call(http.MethodDelete, "/v1/sites/os-ac?force=true", nil, nil)
	waitSiteHealth(t, "os-ac", "Ready")
	kp := waitReady(t, osResource(t, "ac-kp", "compute.keypair", map[string]any{"name": osName("ac-kp"), "publicKey": sshKey(0)}, nil, "os-ac").ID, 1)
	if _, err := keypairs.Get(ctx, regions(t)[1].compute, osName("ac-kp"), nil).Extract(); err != nil {
		t.Errorf("keypair made through the application credential: %v", err)
	}
	remove(t, kp.ID)
}

// Keystone refusing connections makes the site Unreachable and parks its replicas as Unreachable.
func TestOpenStackUnreachableSite(t *testing.T) {
	needOpenStack(t)
	port, err := freeport.On("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]any{"name": "os-dead", "driver": "openstack", "openstack": map[string]any{
		"authURL": fmt.Sprintf("http://127.0.0.1:%d/v3", port), "region": "RegionOne", "username": "u", "password": "p", "projectName": "p"}}
	if code, out := call(http.MethodPost, "/v1/sites", body, nil); code != http.StatusCreated {
		t.Fatalf("register os-dead: %d %s", code, out)
	}
	defer call(http.MethodDelete, "/v1/sites/os-dead?force=true", nil, nil)
	waitSiteHealth(t, "os-dead", "Unreachable")
	r := osResource(t, "dead-kp", "compute.keypair", map[string]any{"name": osName("dead-kp"), "publicKey": sshKey(0)}, nil, "os-1", "os-dead")
	r = waitFor(t, r.ID, time.Minute, "Degraded with os-dead Unreachable", func(r resource, _ int) bool {
		a, _ := r.Replica("os-1")
		b, _ := r.Replica("os-dead")
		return r.State == "Degraded" && a.State == "Ready" && b.State == "Unreachable"
	})
	if rep, _ := r.Replica("os-dead"); !strings.Contains(rep.Message, "unreachable") {
		t.Errorf("os-dead replica message %q, want it parked as unreachable", rep.Message)
	}
	code, out := call(http.MethodGet, "/v1/sites/os-dead", nil, nil)
	if code != http.StatusOK || !strings.Contains(string(out), "connection refused") || !strings.Contains(string(out), "Unreachable: site os-dead: authenticating with keystone") {
		t.Errorf("os-dead: %d %s, want keystone's refusal as an Unreachable health message", code, out)
	}
	call(http.MethodDelete, "/v1/sites/os-dead?force=true", nil, nil)
	remove(t, r.ID)
}

// privateFlavorAccess: a private flavor is usable by the projects listed, and only those, on every
// region; the list converges on update.
func privateFlavorAccess(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	pc := adminClient(t)
	project, err := pc.GetAuthResult().(tokens.CreateResult).ExtractProject()
	if err != nil {
		t.Fatal(err)
	}
	access := func(reg region, id string) []string {
		pages, err := flavors.ListAccesses(reg.compute, id).AllPages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all, _ := flavors.ExtractAccesses(pages)
		var out []string
		for _, a := range all {
			out = append(out, a.TenantID)
		}
		return out
	}
	spec := map[string]any{"name": osName("e2e-private"), "vcpus": 2, "ram": 256, "disk": 1, "public": false, "projects": []string{project.ID}}
	fl := waitReady(t, osResource(t, "e2e-private", "compute.flavor", spec, nil, osSites...).ID, 1)
	eachRegion(t, fl, func(reg region, id string) {
		f, err := flavors.Get(ctx, reg.compute, id).Extract()
		if err != nil || f.IsPublic {
			t.Errorf("%s: private flavor %+v %v", reg.name, f, err)
		}
		if got := access(reg, id); len(got) != 1 || got[0] != project.ID {
			t.Errorf("%s: flavor access %v, want [%s]", reg.name, got, project.ID)
		}
	})
	delete(spec, "projects")
	fl = waitReady(t, osUpdate(t, fl, "compute.flavor", spec).ID, 2)
	eachRegion(t, fl, func(reg region, id string) {
		if got := access(reg, id); len(got) != 0 {
			t.Errorf("%s: flavor access %v after the update, want none", reg.name, got)
		}
	})
	remove(t, fl.ID)
}
