package harness

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Chromium returns the path of Debian's headless-capable chromium, which the status page's tests
// drive; when it is missing, `scripts/tools.sh chromium` installs the package (root, apt).
func Chromium() (string, error) {
	if path, err := exec.LookPath("chromium"); err == nil {
		return path, nil
	}
	cmd := exec.Command("bash", filepath.Join(moduleRoot(), "scripts", "tools.sh"), "chromium")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/tools.sh chromium: %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "chromium"), nil
}
