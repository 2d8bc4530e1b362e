package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
)

// No site secret is anywhere a reader of cheops could look: every kube-apiserver's token and the
// OpenStack password reach the sites (the other tests show it), yet no raw etcd value, no API
// answer, no line of the processes' debug logs and no event of any workflow history of this run
// holds one, and etcd holds every site's credentials sealed. It runs after the other tests (its
// file sorts last), so it scans all they left.
func TestNoSecretLeaks(t *testing.T) {
	needOpenStack(t)
	secrets := map[string]string{"OpenStack password": env.os.Env["OS_PASSWORD"]}
	for _, a := range env.kube.Apiservers {
		secrets["token of "+a.Name] = a.Token
	}
	for what, s := range secrets {
		if len(s) < 8 {
			t.Fatalf("the %s is too short to scan for", what)
		}
	}
	scan := func(where string, data []byte) {
		t.Helper()
		for what, secret := range secrets {
			if strings.Contains(string(data), secret) {
				t.Errorf("%s holds the %s", where, what)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// etcd: nothing in clear; every credential sealed.
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{env.cheops.EtcdEndpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	resp, err := ec.Get(ctx, "\x00", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	sealed := 0
	for _, kv := range resp.Kvs {
		scan("etcd key "+string(kv.Key), kv.Value)
		if strings.Contains(string(kv.Key), "/credentials/") {
			if !strings.HasPrefix(string(kv.Value), `{"sealed":"v1.`) {
				t.Errorf("etcd key %s is not sealed", kv.Key)
			}
			sealed++
		}
	}
	if sealed < len(env.kube.Apiservers)+1 {
		t.Errorf("%d sealed credentials among %d keys; want at least one per registered site", sealed, len(resp.Kvs))
	}

	// The API: every site and resource, as an admin sees them.
	for _, path := range []string{"/v1/sites", "/v1/resources?limit=1000"} {
		code, out := call(http.MethodGet, path, nil, nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, out)
		}
		scan("GET "+path, out)
	}

	// The dev and worker processes' logs, at debug level.
	logs := 0
	for _, name := range []string{"dev.log", "worker.log"} {
		data, err := os.ReadFile(filepath.Join(env.cheops.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		logs += len(data)
		scan(name, data)
	}

	// Every workflow history of the run, open or closed.
	tc, err := client.Dial(client.Options{HostPort: env.cheops.TemporalAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	histories, events := 0, 0
	var next []byte
	for {
		page, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", PageSize: 1000, NextPageToken: next})
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range page.Executions {
			iter := tc.GetWorkflowHistory(ctx, ex.Execution.WorkflowId, ex.Execution.RunId, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for iter.HasNext() {
				ev, err := iter.Next()
				if err != nil {
					t.Fatal(err)
				}
				data, _ := protojson.Marshal(ev)
				scan("history of "+ex.Execution.WorkflowId, data)
				events++
			}
			histories++
		}
		if next = page.NextPageToken; len(next) == 0 {
			break
		}
	}
	if histories == 0 {
		t.Error("no workflow history to scan")
	}
	t.Logf("scanned %d etcd keys (%d sealed credentials), %d KiB of logs, %d events of %d workflow histories for %d secrets",
		len(resp.Kvs), sealed, logs>>10, events, histories, len(secrets))
}
