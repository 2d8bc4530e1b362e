package harness

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// OpenStack is the real OpenStack control plane of scripts/openstack.sh: one Keystone and two
// regions, RegionOne and RegionTwo, each with nova (fake compute driver), neutron, glance and
// placement, all on 127.0.0.1.
type OpenStack struct {
	// Env is the admin's OS_* settings (the script's env file).
	Env     map[string]string
	Regions []string
	log     string
}

// StartOpenStack runs `scripts/openstack.sh up` (installing Debian's packages on first use), with
// its output in dir/openstack.log. It fails, never skips, when the bring-up fails.
func StartOpenStack(dir string) (*OpenStack, error) {
	o := &OpenStack{log: filepath.Join(dir, "openstack.log")}
	out, err := o.script("up")
	if err != nil {
		return o, err
	}
	envFile := strings.TrimSpace(out)
	f, err := os.Open(envFile)
	if err != nil {
		return o, fmt.Errorf("openstack env file: %w", err)
	}
	defer f.Close()
	o.Env = map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			o.Env[k] = v
		}
	}
	o.Regions = strings.Split(o.Env["CHEOPS_OPENSTACK_REGIONS"], ",")
	return o, sc.Err()
}

func (o *OpenStack) script(verb string) (string, error) {
	logf, err := os.OpenFile(o.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	defer logf.Close()
	var stdout strings.Builder
	cmd := exec.Command("bash", filepath.Join(moduleRoot(), "scripts", "openstack.sh"), verb)
	cmd.Stdout, cmd.Stderr = &stdout, logf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/openstack.sh %s: %w; see %s", verb, err, o.log)
	}
	return stdout.String(), nil
}

// Close stops every process the script started, unless CHEOPS_OPENSTACK_REUSE=1 asks to keep them
// for the next run.
func (o *OpenStack) Close() {
	if os.Getenv("CHEOPS_OPENSTACK_REUSE") == "1" {
		return
	}
	if _, err := o.script("down"); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
