package kubernetes

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/cheops-io/cheops"
)

// maxKubeconfig bounds what is read of a kubeconfig file of the worker's host.
const maxKubeconfig = 1 << 20

// errHostFile is the one answer for a host file that cannot be used, whatever the reason: whether a
// path exists, or what it holds, is not for a caller to learn.
var errHostFile = errors.New("is not a readable kubeconfig file of at most 1 MiB under the folder the operator allows (--site-files-dir)")

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

// checkHostPath checks, without touching the file system, that a path names a file under the
// folder the operator allows.
func checkHostPath(dir, path string) error {
	if dir == "" {
		return errors.New("files of the worker's host are refused: the operator has not allowed a folder for them (--site-files-dir)")
	}
	if !filepath.IsAbs(path) || !within(filepath.Clean(dir), filepath.Clean(path)) {
		return fmt.Errorf("must be an absolute path under %s", filepath.Clean(dir))
	}
	return nil
}

func within(dir, path string) bool {
	return strings.HasPrefix(path, strings.TrimSuffix(dir, string(filepath.Separator))+string(filepath.Separator))
}

// readHostFile reads a file of the worker's host named by a site: under dir once every link is
// resolved, a regular file, at most maxKubeconfig bytes. Every failure is errHostFile.
func readHostFile(dir, path string) ([]byte, error) {
	if checkHostPath(dir, path) != nil {
		return nil, errHostFile
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, errHostFile
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil || !within(realDir, real) {
		return nil, errHostFile
	}
	f, err := os.Open(real)
	if err != nil {
		return nil, errHostFile
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, errHostFile
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKubeconfig+1))
	if err != nil || len(b) > maxKubeconfig {
		return nil, errHostFile
	}
	return b, nil
}
