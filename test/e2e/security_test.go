package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcd holds no site secret in plain text: every kube-apiserver's token and the OpenStack
// password reach the sites (the other tests show it), yet no raw etcd value contains them.
func TestSecretsAreSealedInEtcd(t *testing.T) {
	needOpenStack(t)
	secrets := map[string]string{"OpenStack password": env.os.Env["OS_PASSWORD"]}
	for _, a := range env.kube.Apiservers {
		secrets["token of "+a.Name] = a.Token
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{env.cheops.EtcdEndpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, "\x00", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	sealed := 0
	for _, kv := range resp.Kvs {
		for what, secret := range secrets {
			if len(secret) >= 8 && strings.Contains(string(kv.Value), secret) {
				t.Errorf("etcd key %s holds the %s in plain text", kv.Key, what)
			}
		}
		if strings.Contains(string(kv.Key), "/credentials/") {
			if !strings.HasPrefix(string(kv.Value), `{"sealed":"v1.`) {
				t.Errorf("etcd key %s is not sealed", kv.Key)
			}
			sealed++
		}
	}
	if sealed < len(env.kube.Apiservers)+1 {
		t.Fatalf("%d sealed credentials among %d keys; want at least one per registered site", sealed, len(resp.Kvs))
	}
	t.Logf("%d etcd keys scanned, %d sealed credentials, none holds one of %d secrets", len(resp.Kvs), sealed, len(secrets))
}
