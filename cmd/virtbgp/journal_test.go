package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/testutil"
)

// fileID is the "device:inode" of f, as systemd puts it in JOURNAL_STREAM.
func fileID(t *testing.T, f *os.File) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// runLogged runs the virtbgp binary bin on the demo driver (libvirt
// test:///default, its domain test mapped) with stderr a file and the
// environment variable JOURNAL_STREAM set to journal(stderr), until it has
// announced the domain's routes; it returns the log.
func runLogged(t *testing.T, bin string, journal func(stderr *os.File) string) []string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "virtbgp.yaml")
	// The state under /tmp (t.TempDir) gives a warning at start.
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("version: 1\nlibvirt: {uri: \"test:///default\"}\n"+
		"bgp: {asn: 65001, router-id: 192.0.2.1}\nmapping: {path: %q, watch: false}\n"+
		"state-dir: %q\ncontrol: {socket: %q}\n",
		mustAbs(t, "../../examples/mapping.yaml"), filepath.Join(dir, "state"), filepath.Join(dir, "c.sock"))), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.Stderr = stderr
	cmd.Env = append(os.Environ(), "JOURNAL_STREAM="+journal(stderr))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := <-done; err != nil {
			t.Errorf("virtbgp run: %v", err)
		}
	}()
	read := func() string {
		b, _ := os.ReadFile(stderr.Name())
		return string(b)
	}
	testutil.WaitFor(t, 30*time.Second, "route announced in the log", func() bool {
		return strings.Contains(read(), `msg="route announced"`)
	})
	return strings.Split(strings.TrimSpace(read()), "\n")
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestJournalPriorityPrefix runs virtbgp with its stderr the file that
// JOURNAL_STREAM names, as systemd does for a unit logging to the journal:
// every line starts with its syslog priority (a warning with <4>, an info
// line with <6>) and the text format has no time of its own. With
// JOURNAL_STREAM naming another file (stderr redirected), the lines are
// plain, with the time.
func TestJournalPriorityPrefix(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "virtbgp")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	lines := runLogged(t, bin, func(stderr *os.File) string { return fileID(t, stderr) })
	var warned, announced bool
	for _, l := range lines {
		switch {
		case len(l) < 4 || l[0] != '<' || l[2] != '>' || !strings.HasPrefix(l[3:], "level="):
			t.Errorf("journal line without a priority prefix, or with a time: %q", l)
		case strings.Contains(l, "level=WARN"):
			warned = true
			if !strings.HasPrefix(l, "<4>level=WARN") {
				t.Errorf("warning with the wrong priority: %q", l)
			}
		case strings.Contains(l, "level=INFO"):
			announced = announced || strings.Contains(l, "route announced")
			if !strings.HasPrefix(l, "<6>level=INFO") {
				t.Errorf("info line with the wrong priority: %q", l)
			}
		}
	}
	if !warned || !announced {
		t.Errorf("want a warning (state-dir under /tmp) and route announced lines, got:\n%s", strings.Join(lines, "\n"))
	}

	other, err := os.CreateTemp(t.TempDir(), "other")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for _, l := range runLogged(t, bin, func(*os.File) string { return fileID(t, other) }) {
		if !strings.HasPrefix(l, "time=") {
			t.Errorf("stderr is not the journal's stream, yet the line is %q", l)
		}
	}
}
