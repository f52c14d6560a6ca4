package packaging_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// run runs a command and returns its stdout and stderr.
func run(t *testing.T, name string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// installed reports whether dpkg has the package virtbgp installed (or
// its conffiles left).
func installed(t *testing.T) bool {
	t.Helper()
	out, _, err := run(t, "dpkg-query", "-W", "-f=${db:Status-Status}", "virtbgp")
	return err == nil && strings.TrimSpace(out) != "not-installed" && strings.TrimSpace(out) != ""
}

// TestPackage builds the package as `make deb` does, checks it with
// lintian, installs it with dpkg -i, checks the installed config with the
// installed virtbgp and the installed unit with systemd-analyze verify,
// and purges it: nothing of it may remain.
func TestPackage(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test installs a package with dpkg: run it as root (make test does)")
	}
	if installed(t) {
		t.Fatal("a virtbgp package is installed on this machine already; the test would replace it: dpkg --purge virtbgp first")
	}
	out, errs, err := run(t, "../scripts/mkdeb.sh", t.TempDir())
	if err != nil {
		t.Fatalf("mkdeb.sh: %v\n%s", err, errs)
	}
	deb := strings.TrimSpace(out)
	t.Logf("built %s", deb)

	t.Run("lintian", func(t *testing.T) {
		out, errs, err := run(t, "lintian", "--fail-on", "error,warning", deb)
		var tags []string
		for _, l := range strings.Split(out+errs, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, "running with root privileges") {
				tags = append(tags, l)
			}
		}
		if err != nil || len(tags) > 0 {
			t.Errorf("lintian %s: %v\n%s", filepath.Base(deb), err, strings.Join(tags, "\n"))
		}
	})

	if _, errs, err := run(t, "dpkg", "-i", deb); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, errs)
	}
	purged := false
	t.Cleanup(func() {
		if !purged {
			_, errs, err := run(t, "dpkg", "--purge", "virtbgp")
			if err != nil {
				t.Errorf("dpkg --purge virtbgp: %v\n%s", err, errs)
			}
		}
	})

	for _, f := range []string{
		"/usr/sbin/virtbgp", "/lib/systemd/system/virtbgp.service", "/etc/virtbgp/virtbgp.yaml",
		"/etc/virtbgp/mapping.d/example.yaml", "/usr/share/man/man8/virtbgp.8.gz", "/usr/share/man/man5/virtbgp-mapping.5.gz",
		"/usr/share/bash-completion/completions/virtbgp", "/usr/share/virtbgp/schema/config.schema.json",
		"/usr/share/virtbgp/schema/mapping.schema.json", "/usr/share/doc/virtbgp/copyright", "/usr/share/doc/virtbgp/changelog.gz",
		"/usr/share/doc/virtbgp/README.md",
	} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("after dpkg -i: %v", err)
		}
	}
	out, _, _ = run(t, "dpkg-query", "-W", "-f=${Conffiles}", "virtbgp")
	for _, f := range []string{"/etc/virtbgp/virtbgp.yaml", "/etc/virtbgp/mapping.d/example.yaml"} {
		if !strings.Contains(out, f+" ") {
			t.Errorf("%s is not a conffile: %q", f, out)
		}
	}

	t.Run("check of the shipped config", func(t *testing.T) {
		out, errs, err := run(t, "/usr/sbin/virtbgp", "check", "--config", "/etc/virtbgp/virtbgp.yaml")
		if err != nil || errs != "" {
			t.Errorf("virtbgp check: %v, stderr %q (want no problem and no warning)", err, errs)
		}
		for _, want := range []string{"config /etc/virtbgp/virtbgp.yaml: ok", "libvirt qemu:///system", "mapping /etc/virtbgp/mapping.d: ok"} {
			if !strings.Contains(out, want) {
				t.Errorf("virtbgp check says %q, lacks %q", out, want)
			}
		}
		if out, _, err := run(t, "/usr/sbin/virtbgp", "version"); err != nil || !strings.HasPrefix(out, "virtbgp 0.") || strings.Contains(out, "commit unknown") {
			t.Errorf("virtbgp version: %v, %q; want the version and the commit", err, out)
		}
	})

	t.Run("systemd-analyze verify of the installed unit", func(t *testing.T) {
		cmd := exec.Command("systemd-analyze", "verify", "--man=no", "/lib/systemd/system/virtbgp.service")
		cmd.Env = append(os.Environ(), "SYSTEMD_LOG_TARGET=console", "SYSTEMD_LOG_COLOR=0", "SYSTEMD_PAGER=")
		out, err := cmd.CombinedOutput()
		var problems []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" && strings.Contains(l, "virtbgp") {
				problems = append(problems, l)
			} else if l != "" {
				t.Logf("systemd-analyze verify, about another unit: %s", l)
			}
		}
		if err != nil || len(problems) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, strings.Join(problems, "\n"))
		}
	})

	t.Run("not enabled or started", func(t *testing.T) {
		if _, err := os.Lstat("/etc/systemd/system/multi-user.target.wants/virtbgp.service"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the package enabled virtbgp (%v): it must wait for the operator's config", err)
		}
		if _, err := os.Stat("/run/virtbgp/control.sock"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a control socket exists after the install (%v): the package started virtbgp", err)
		}
	})

	t.Run("an operator's edit survives a reinstall", func(t *testing.T) {
		const cfg = "/etc/virtbgp/virtbgp.yaml"
		data, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		edited := append(data, "# edited by the operator\n"...)
		if err := os.WriteFile(cfg, edited, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, errs, err := run(t, "dpkg", "-i", "--force-confold", deb); err != nil {
			t.Fatalf("dpkg -i again: %v\n%s", err, errs)
		}
		if got, _ := os.ReadFile(cfg); !bytes.Equal(got, edited) {
			t.Errorf("the reinstall replaced the edited %s", cfg)
		}
	})

	// Drain state, as virtbgp leaves it: the purge removes it.
	if err := os.MkdirAll("/var/lib/virtbgp", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/var/lib/virtbgp/drain.json", []byte(`{"state":"drained"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errs, err := run(t, "dpkg", "--purge", "virtbgp"); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, errs)
	}
	purged = true
	if installed(t) {
		t.Error("dpkg still knows virtbgp after the purge")
	}
	for _, f := range []string{"/usr/sbin/virtbgp", "/lib/systemd/system/virtbgp.service", "/etc/virtbgp", "/var/lib/virtbgp",
		"/usr/share/doc/virtbgp", "/usr/share/virtbgp"} {
		if _, err := os.Lstat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after the purge %s remains (%v)", f, err)
		}
	}
}
