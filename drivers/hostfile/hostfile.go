// Package hostfile reads the files of a worker's host that site settings name (a kubeconfig, a
// clouds.yaml, a CA bundle): only under the one folder the operator allows, through no link out
// of it, regular files of bounded size. Every failure reads the same, so a caller who names a path
// learns neither whether it exists nor what it holds.
package hostfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// MaxSize bounds what is read of a host file.
const MaxSize = 1 << 20

// ErrUnusable is the one answer for a host file that cannot be used, whatever the reason.
var ErrUnusable = errors.New("is not a readable file of at most 1 MiB, in the expected format, under the folder the operator allows (--site-files-dir)")

// Check checks, without touching the file system, that path names a file under dir. An empty dir
// allows no file at all.
func Check(dir, path string) error {
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

// Read reads a host file named by a site: under dir once every link is resolved, a regular file,
// at most MaxSize bytes. Every failure is ErrUnusable.
func Read(dir, path string) ([]byte, error) {
	if Check(dir, path) != nil {
		return nil, ErrUnusable
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, ErrUnusable
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil || !within(realDir, real) {
		return nil, ErrUnusable
	}
	f, err := os.Open(real)
	if err != nil {
		return nil, ErrUnusable
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, ErrUnusable
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil || len(b) > MaxSize {
		return nil, ErrUnusable
	}
	return b, nil
}
