package kubernetes

import (
	"fmt"
	"maps"
	"slices"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/cheops-io/cheops"
)

// checkKubeconfig refuses a kubeconfig that would make the worker run a program (exec and
// auth-provider plugins, unless allowExec) or read a file of its host (tokenFile, client
// certificate, key and CA paths: their inline *-data forms are the way). field names the kubeconfig
// in the error ("kubernetes.kubeconfig").
func checkKubeconfig(cfg *clientcmdapi.Config, field string, allowExec bool) error {
	for _, name := range slices.Sorted(maps.Keys(cfg.AuthInfos)) {
		u := cfg.AuthInfos[name]
		at := fmt.Sprintf("%s.users[%s].", field, name)
		switch {
		case u.Exec != nil && !allowExec:
			return &cheops.FieldError{Field: at + "exec", Message: "exec plugins run a program on the worker's host; refused unless the worker is started with --allow-kubeconfig-exec"}
		case u.AuthProvider != nil && !allowExec:
			return &cheops.FieldError{Field: at + "auth-provider", Message: "auth-provider plugins are refused unless the worker is started with --allow-kubeconfig-exec"}
		case u.TokenFile != "":
			return &cheops.FieldError{Field: at + "tokenFile", Message: "files of the worker's host are refused; give the token inline (token)"}
		case u.ClientCertificate != "":
			return &cheops.FieldError{Field: at + "client-certificate", Message: "files of the worker's host are refused; use client-certificate-data"}
		case u.ClientKey != "":
			return &cheops.FieldError{Field: at + "client-key", Message: "files of the worker's host are refused; use client-key-data"}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Clusters)) {
		if cfg.Clusters[name].CertificateAuthority != "" {
			return &cheops.FieldError{Field: fmt.Sprintf("%s.clusters[%s].certificate-authority", field, name),
				Message: "files of the worker's host are refused; use certificate-authority-data"}
		}
	}
	return nil
}
