package fleet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/virtbgp/virtbgp/internal/fleetgen"
)

// buildVirtbgp builds ./cmd/virtbgp of the tree at root into dir.
func buildVirtbgp(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "virtbgp")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/virtbgp")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/virtbgp: %v: %s", err, tail(b, 2000))
	}
	return bin, nil
}

// checkRun is one `virtbgp check` run.
type checkRun struct {
	Wall   time.Duration // from start to exit, as this process sees it
	CPU    time.Duration // user + system time of the child
	MaxRSS int64         // peak resident set of the child, bytes
}

// fixture is one size's generated mapping and its config.
type fixture struct {
	VMs     int
	Mapping string // path
	Config  string // path
	Bytes   int64  // size of the mapping file
}

// makeFixture writes a mapping of n VMs and a config naming it into dir.
func makeFixture(dir string, n int) (*fixture, error) {
	name := fmt.Sprintf("mapping-%d.yaml", n)
	fx := &fixture{VMs: n, Mapping: filepath.Join(dir, name), Config: filepath.Join(dir, fmt.Sprintf("virtbgp-%d.yaml", n))}
	if err := fleetgen.Write(fx.Mapping, n, 0); err != nil {
		return nil, err
	}
	st, err := os.Stat(fx.Mapping)
	if err != nil {
		return nil, err
	}
	fx.Bytes = st.Size()
	return fx, os.WriteFile(fx.Config, []byte(configYAML(name)), 0o644)
}

// runCheck runs `bin check --config fx.Config` once and takes its wall
// time, CPU time and peak RSS. It fails unless check accepts the mapping
// with the VMs and routes (2 per VM) it should have.
//
// The peak RSS comes from GNU time, which forks the check and reads its
// wait4 rusage. This process cannot read it from its own wait4: Go starts
// children with vfork, and Linux counts the parent's peak RSS into a
// child's ru_maxrss at exec (exec_mmap), so after a suite that grew this
// process to 500 MB every check "peaked" at 500 MB. GNU time's forked
// child carries only time's few hundred KiB.
func runCheck(ctx context.Context, bin string, fx *fixture) (checkRun, error) {
	cmd := exec.CommandContext(ctx, gnuTime, "-f", rssMarker+"%M", bin, "check", "--config", fx.Config)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return checkRun{}, err
	}
	err := cmd.Wait()
	wall := time.Since(t0)
	if err != nil {
		return checkRun{}, fmt.Errorf("%s check --config %s: %v: %s%s", bin, fx.Config, err, stdout.Bytes(), tail(stderr.Bytes(), 2000))
	}
	want := fmt.Sprintf("ok (%d VM(s), %d route(s)", fx.VMs, 2*fx.VMs)
	if !strings.Contains(stdout.String(), want) {
		return checkRun{}, fmt.Errorf("%s check --config %s: want %q in its output, got %q", bin, fx.Config, want, stdout.String())
	}
	kib, err := maxRSSKiB(stderr.String())
	if err != nil {
		return checkRun{}, fmt.Errorf("%s check: %w", bin, err)
	}
	return checkRun{
		Wall:   wall,
		CPU:    cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(),
		MaxRSS: kib * 1024,
	}, nil
}

// gnuTime is GNU time (Debian package time, installed by scripts/deps.sh).
const gnuTime = "/usr/bin/time"

// rssMarker starts the line GNU time writes with the peak RSS in KiB.
const rssMarker = "virtbgp-bench-maxrss-kib "

// maxRSSKiB finds GNU time's line in the check's stderr.
func maxRSSKiB(stderr string) (int64, error) {
	i := strings.LastIndex(stderr, rssMarker)
	if i < 0 {
		return 0, fmt.Errorf("no peak RSS from %s in %q", gnuTime, tail([]byte(stderr), 500))
	}
	f := strings.Fields(stderr[i+len(rssMarker):])
	if len(f) == 0 {
		return 0, fmt.Errorf("empty peak RSS from %s", gnuTime)
	}
	kib, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || kib <= 0 {
		return 0, fmt.Errorf("peak RSS from %s: %q", gnuTime, f[0])
	}
	return kib, nil
}
