package e2e

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/cheops-io/cheops/test/harness"
)

// The Kubernetes manifests in deploy/kubernetes are true to the code: kubectl builds them with
// kustomize and a real kube-apiserver accepts every object in a server-side dry run; every
// container runs a cheops command with flags the binary takes; every CHEOPS_ variable config.env
// sets is one the binary reads.
func TestDeployManifestsAreTrueToTheCode(t *testing.T) {
	kubectl, err := harness.KubectlPath()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src := filepath.Join("..", "..", "deploy", "kubernetes")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The two secrets the kustomization's comment says to make first, made as it says.
	key := cheopsOutput(t, "admin", "new-key")
	token := cheopsOutput(t, "admin", "new-token", "--name", "admin", "--role", "admin")
	var entry string
	for _, line := range strings.Split(token, "\n") {
		if strings.HasPrefix(line, "- {") {
			entry = line
		}
	}
	if entry == "" {
		t.Fatalf("cheops admin new-token printed no tokens-file entry:\n%s", token)
	}
	writeFile(t, filepath.Join(dir, "encryption.keys"), key)
	writeFile(t, filepath.Join(dir, "tokens.yaml"), "tokens:\n"+entry+"\n")

	// A dry run of namespaced objects needs their namespace to exist.
	a := env.kube.Apiservers[0]
	cs, _, err := a.Clients()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cheops"}},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	apply := exec.Command(kubectl, "--kubeconfig", a.Kubeconfig, "apply", "-k", dir, "--dry-run=server", "-o", "name")
	var stderr bytes.Buffer
	apply.Stderr = &stderr
	out, err := apply.Output()
	if err != nil {
		t.Fatalf("kubectl apply -k deploy/kubernetes --dry-run=server: %v\n%s%s", err, out, stderr.Bytes())
	}
	var applied []string
	for _, line := range strings.Fields(string(out)) {
		kind, _, _ := strings.Cut(line, "/")
		applied = append(applied, kind)
	}
	slices.Sort(applied)
	if want := []string{"configmap", "deployment.apps", "deployment.apps", "namespace", "secret", "service"}; !slices.Equal(applied, want) {
		t.Fatalf("the dry run applied %v, want %v:\n%s", applied, want, out)
	}

	built, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(built), 4096)
	commands := 0
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			break
		}
		if u.GetKind() != "Deployment" {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
		for _, c := range containers {
			args, _, _ := unstructured.NestedStringSlice(c.(map[string]any), "args")
			// Flags the command does not take fail to parse before --help is honoured.
			if out, err := exec.Command(env.cheops.Bin, append(args, "--help")...).CombinedOutput(); err != nil {
				t.Errorf("%s: cheops %s: %v\n%s", u.GetName(), strings.Join(args, " "), err, out)
			}
			commands++
		}
	}
	if commands != 2 {
		t.Fatalf("%d containers checked, want the server's and the worker's", commands)
	}

	help := cheopsOutput(t, "server", "--help") + cheopsOutput(t, "worker", "--help")
	f, err := os.Open(filepath.Join(src, "config.env"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The settings commented out, as examples, must be real too.
	setting := regexp.MustCompile(`^#?\s*(CHEOPS_[A-Z_]+)=`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := setting.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m != nil && !strings.Contains(help, "("+m[1]+")") && !strings.Contains(help, "("+m[1]+";") {
			t.Errorf("config.env sets %s, which neither cheops server nor cheops worker reads", m[1])
		}
	}
}

// cheopsOutput runs the cheops binary under test and returns its standard output.
func cheopsOutput(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(env.cheops.Bin, args...).Output()
	if err != nil {
		t.Fatalf("cheops %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// deploy/compose.yaml runs the topology scripts/cluster.sh runs, true to the code: every cheops
// container's command line is one the binary takes, every CHEOPS_ variable one it reads, every
// etcd command line one etcd v3.6.7 takes (its etcdmain, as internal/tools/etcd builds it), and the
// Temporal image is of the server version go.mod requires, on PostgreSQL. No container engine runs
// here, so the file is checked, not run.
func TestComposeIsTrueToTheCode(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string
			Build       map[string]any
			Command     []string
			Environment map[string]string
		}
	}
	if err := sigsyaml.Unmarshal(data, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	help := cheopsOutput(t, "server", "--help") + cheopsOutput(t, "worker", "--help")
	etcdBin := filepath.Join(t.TempDir(), "etcd")
	if out, err := exec.Command("go", "build", "-o", etcdBin, "../../internal/tools/etcd").CombinedOutput(); err != nil {
		t.Fatalf("build etcd: %v\n%s", err, out)
	}
	temporalVersion, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "go.temporal.io/server").Output()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for name, svc := range compose.Services {
		switch {
		case svc.Build != nil:
			kinds[svc.Command[0]]++
			if out, err := exec.Command(env.cheops.Bin, append(svc.Command, "--help")...).CombinedOutput(); err != nil {
				t.Errorf("%s: cheops %s: %v\n%s", name, strings.Join(svc.Command, " "), err, out)
			}
			for k := range svc.Environment {
				if strings.HasPrefix(k, "CHEOPS_") && !strings.Contains(help, "("+k+")") && !strings.Contains(help, "("+k+";") {
					t.Errorf("%s sets %s, which neither cheops server nor cheops worker reads", name, k)
				}
			}
		case strings.HasPrefix(svc.Image, "quay.io/coreos/etcd:"):
			kinds["etcd"]++
			if svc.Image != "quay.io/coreos/etcd:v3.6.7" {
				t.Errorf("%s runs %s, not the etcd go.mod requires (v3.6.7)", name, svc.Image)
			}
			// etcd parses every flag before it honours --version: an unknown one fails.
			if out, err := exec.Command(etcdBin, append(svc.Command[1:], "--version")...).CombinedOutput(); err != nil {
				t.Errorf("%s: %s: %v\n%s", name, strings.Join(svc.Command, " "), err, out)
			}
		case strings.HasPrefix(svc.Image, "temporalio/auto-setup:"):
			kinds["temporal"]++
			if want := "temporalio/auto-setup:" + strings.TrimPrefix(strings.TrimSpace(string(temporalVersion)), "v"); svc.Image != want {
				t.Errorf("%s runs %s, want %s, the server go.mod requires", name, svc.Image, want)
			}
			if svc.Environment["DB"] != "postgres12" || svc.Environment["NUM_HISTORY_SHARDS"] != "4" {
				t.Errorf("%s: DB %q, %s history shards; want postgres12 and 4", name, svc.Environment["DB"], svc.Environment["NUM_HISTORY_SHARDS"])
			}
		}
	}
	if kinds["server"] != 2 || kinds["worker"] != 2 || kinds["etcd"] != 3 || kinds["temporal"] != 1 {
		t.Fatalf("compose runs %v; want 2 servers, 2 workers, 3 etcd members and one Temporal", kinds)
	}
}
