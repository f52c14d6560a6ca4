package lab

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The directories a libvirtd with the QEMU driver uses, each replaced in the
// host's private mount namespace by a directory of the lab.
var libvirtDirs = []struct{ name, target string }{
	{"etc", "/etc/libvirt"},
	{"run", "/run/libvirt"},
	{"lib", "/var/lib/libvirt"},
	{"log", "/var/log/libvirt"},
	{"cache", "/var/cache/libvirt"},
}

func libvirtdProc(h *Host) string { return "libvirtd-" + h.Name }

// qemuDriver returns the path of libvirt's QEMU driver module.
func qemuDriver() string {
	m, _ := filepath.Glob("/usr/lib/*/libvirt/connection-driver/libvirt_driver_qemu.so")
	if len(m) > 0 {
		return m[0]
	}
	return "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so"
}

// writeLibvirtConfig writes the host's private libvirt directories and
// configuration: TCP listener on its address without auth (for
// peer-to-peer migration), its own host_uuid, QEMU as root without security
// driver, cgroups or virtlogd, migration over its address.
func (h *Host) writeLibvirtConfig() error {
	for _, d := range libvirtDirs {
		if err := os.MkdirAll(filepath.Join(h.Dir, d.name), 0o755); err != nil {
			return fmt.Errorf("libvirt dirs of %s: %w", h.Name, err)
		}
		// The mount point must exist in the shared file system.
		if err := os.MkdirAll(d.target, 0o755); err != nil {
			return fmt.Errorf("libvirt dirs of %s: %w", h.Name, err)
		}
	}
	libvirtd := fmt.Sprintf(`# libvirtd of lab host %[1]s (written by integration/lab)
listen_tls = 0
listen_tcp = 1
listen_addr = "%[2]s"
auth_tcp = "none"
auth_unix_rw = "none"
auth_unix_ro = "none"
host_uuid = "%[3]s"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
`, h.Name, h.IPv4, h.UUID)
	qemu := fmt.Sprintf(`# QEMU driver of lab host %[1]s (written by integration/lab)
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
namespaces = [ ]
migration_host = "%[2]s"
migration_address = "%[2]s"
`, h.Name, h.IPv4)
	etc := filepath.Join(h.Dir, "etc")
	if err := os.WriteFile(filepath.Join(etc, "libvirtd.conf"), []byte(libvirtd), 0o644); err != nil {
		return fmt.Errorf("libvirtd.conf of %s: %w", h.Name, err)
	}
	if err := os.WriteFile(filepath.Join(etc, "qemu.conf"), []byte(qemu), 0o644); err != nil {
		return fmt.Errorf("qemu.conf of %s: %w", h.Name, err)
	}
	return nil
}

// startLibvirtd writes the host's libvirt config, seeds its QEMU capability
// cache, starts its libvirtd and waits until it answers.
func (h *Host) startLibvirtd(ctx context.Context) error {
	l := h.lab
	t0 := time.Now()
	if err := h.writeLibvirtConfig(); err != nil {
		return err
	}
	seedCapsCache(h, l.log)
	// Only the QEMU driver: libvirtd skips the network, nwfilter, storage,
	// LXC, libxl, ... drivers, which cost start time and could touch the
	// namespace's firewall.
	drivers := filepath.Join(l.Dir, "drivers")
	if err := os.MkdirAll(drivers, 0o755); err != nil {
		return fmt.Errorf("libvirtd drivers dir: %w", err)
	}
	link := filepath.Join(drivers, "libvirt_driver_qemu.so")
	if _, err := os.Lstat(link); err != nil {
		if err := os.Symlink(qemuDriver(), link); err != nil && !os.IsExist(err) {
			return fmt.Errorf("libvirtd drivers dir: %w", err)
		}
	}
	return h.runLibvirtd(ctx, t0)
}

// runLibvirtd starts libvirtd in the host's namespace, in a private mount
// and UTS namespace with the lab's directories mounted over libvirt's, under
// the subreaper, and waits until it answers.
func (h *Host) runLibvirtd(ctx context.Context, t0 time.Time) error {
	l := h.lab
	hosts := filepath.Join(h.Dir, "hosts")
	var hb strings.Builder
	hb.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
	for _, o := range l.Hosts() {
		fmt.Fprintf(&hb, "%s\t%s\n%s\t%s\n", o.IPv4, o.NS, o.IPv6, o.NS)
	}
	if err := os.WriteFile(hosts, []byte(hb.String()), 0o644); err != nil {
		return fmt.Errorf("hosts file of %s: %w", h.Name, err)
	}
	// The host's own /etc/hosts (in its mount namespace only) names both
	// hypervisors: libvirt resolves its hostname, and there is no DNS in
	// the namespace.
	script := `set -e
mount --bind "$8" /etc/hosts
mount --bind "$1" /etc/libvirt
mount --bind "$2" /run/libvirt
mount --bind "$3" /var/lib/libvirt
mount --bind "$4" /var/log/libvirt
mount --bind "$5" /var/cache/libvirt
hostname "$6"
exec "$7" -- libvirtd --listen -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid`
	argv := []string{"ip", "netns", "exec", h.NS, "unshare", "--mount", "--uts", "--propagation", "private",
		"/bin/sh", "-c", script, "sh"}
	for _, d := range libvirtDirs {
		argv = append(argv, filepath.Join(h.Dir, d.name))
	}
	argv = append(argv, h.NS, l.subreaper(), hosts)
	p, err := startProcess(libvirtdProc(h), filepath.Join(h.Dir, "libvirtd.out"),
		[]string{"LIBVIRT_DRIVER_DIR=" + filepath.Join(l.Dir, "drivers")}, argv...)
	if err != nil {
		return err
	}
	if err := l.track(p); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err = Eventually(wctx, 50*time.Millisecond, func(ctx context.Context) error {
		if !p.alive() {
			return Permanent(fmt.Errorf("libvirtd exited: %s\n%s", Tail(p.Log, 10), Tail(filepath.Join(h.Dir, "log", "libvirtd.log"), 10)))
		}
		_, err := h.Virsh(ctx, "version")
		return err
	})
	if err != nil {
		return fmt.Errorf("libvirtd on %s did not come up: %w", h.Name, err)
	}
	l.log.Info("libvirtd up", "host", h.Name, "pid", p.PID, "uri", h.URI, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// LibvirtdPID returns the PID of the host's libvirtd, or 0 if it does not
// run.
func (h *Host) LibvirtdPID() int {
	if pid := h.SupervisorPID(); pid != 0 {
		return libvirtdChild(pid)
	}
	return 0
}

// SupervisorPID returns the PID of the subreaper the host's current
// libvirtd runs under (signals sent to it reach libvirtd; it reaps the
// guests' QEMU processes), or 0 if it does not run.
func (h *Host) SupervisorPID() int {
	if p := h.lab.proc(libvirtdProc(h)); p != nil && p.alive() {
		return p.PID
	}
	return 0
}

// StopLibvirtd stops the host's libvirtd with sig (SIGTERM if 0; SIGKILL
// for a crash), waiting up to 10 s before it uses SIGKILL. Its guests keep
// running, still reaped by the subreaper. A stopped libvirtd is no error.
func (h *Host) StopLibvirtd(ctx context.Context, sig syscall.Signal) error {
	child := h.LibvirtdPID()
	if child == 0 {
		return nil
	}
	// Signal libvirtd itself, not the subreaper: with SIGKILL the
	// subreaper would die, and running guests would lose it.
	c := &process{Name: "libvirtd of " + h.Name, PID: child}
	if _, start, err := procStat(child); err == nil {
		c.Start = start
	}
	if err := c.stop(ctx, sig, 10*time.Second); err != nil {
		return err
	}
	return nil
}

// StartLibvirtd starts the host's libvirtd again after StopLibvirtd; it
// reconnects to the guests that kept running.
func (h *Host) StartLibvirtd(ctx context.Context) error {
	if pid := h.LibvirtdPID(); pid != 0 {
		return fmt.Errorf("start libvirtd on %s: it runs (pid %d)", h.Name, pid)
	}
	// The old subreaper stays while guests it reaps live; keep tracking it
	// under another name so that Down ends it.
	if p := h.lab.proc(libvirtdProc(h)); p != nil {
		h.lab.mu.Lock()
		delete(h.lab.procs, p.Name)
		p.Name = fmt.Sprintf("%s-old-%d", p.Name, p.PID)
		h.lab.procs[p.Name] = p
		h.lab.mu.Unlock()
	}
	return h.runLibvirtd(ctx, time.Now())
}

// RestartLibvirtd stops the host's libvirtd with sig and starts it again.
func (h *Host) RestartLibvirtd(ctx context.Context, sig syscall.Signal) error {
	if err := h.StopLibvirtd(ctx, sig); err != nil {
		return err
	}
	return h.StartLibvirtd(ctx)
}

// libvirtdChild returns the PID of the libvirtd among the children of the
// subreaper pid (the others are QEMU processes it adopted), or 0.
func libvirtdChild(pid int) int {
	// Each thread lists the children it forked or adopted: the subreaper
	// is a Go program, so all of its threads.
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []string
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			kids = append(kids, strings.Fields(string(b))...)
		}
	}
	for _, f := range kids {
		comm, err := os.ReadFile("/proc/" + f + "/comm")
		if err == nil && strings.TrimSpace(string(comm)) == "libvirtd" {
			var c int
			if _, err := fmt.Sscan(f, &c); err == nil {
				return c
			}
		}
	}
	return 0
}

// Where the capability cache of libvirt's QEMU driver lives, and where the
// lab keeps a copy between runs. The QEMU driver probes QEMU for ~3.6 s when
// its cache is empty; it validates a copied cache (QEMU and libvirt binary
// times, kernel, microcode) and probes again only when it is stale.
const hostCapsCache = "/var/cache/libvirt/qemu/capabilities"

func labCapsCache() string {
	d, err := os.UserCacheDir()
	if err != nil {
		d = "/var/cache"
	}
	return filepath.Join(d, "virtbgp-lab", "qemu-capabilities")
}

// seedCapsCache copies the host's (or the lab's saved) QEMU capability cache
// into the host's private cache directory.
func seedCapsCache(h *Host, log *slog.Logger) {
	dst := filepath.Join(h.Dir, "cache", "qemu", "capabilities")
	for _, src := range []string{hostCapsCache, labCapsCache()} {
		if n := copyXML(src, dst); n > 0 {
			log.Debug("seeded the QEMU capability cache", "host", h.Name, "from", src, "files", n)
			return
		}
	}
}

// saveCapsCache keeps hvA's capability cache for the next lab.
func saveCapsCache(h *Host, log *slog.Logger) {
	if m, _ := filepath.Glob(filepath.Join(hostCapsCache, "*.xml")); len(m) > 0 {
		return
	}
	src := filepath.Join(h.Dir, "cache", "qemu", "capabilities")
	if n := copyXML(src, labCapsCache()); n > 0 {
		log.Debug("saved the QEMU capability cache", "to", labCapsCache(), "files", n)
	}
}

// copyXML copies the *.xml files of src into dst and returns how many.
func copyXML(src, dst string) int {
	files, _ := filepath.Glob(filepath.Join(src, "*.xml"))
	if len(files) == 0 {
		return 0
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return 0
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		tmp := filepath.Join(dst, "."+filepath.Base(f)+".tmp")
		if os.WriteFile(tmp, b, 0o644) == nil && os.Rename(tmp, filepath.Join(dst, filepath.Base(f))) == nil {
			n++
		}
	}
	return n
}

// Tail returns the last n lines of the file at path (of its last 64 KiB),
// after its name, for error messages.
func Tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	defer f.Close()
	const max = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > max {
		_, _ = f.Seek(st.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return path + ":\n" + strings.Join(lines, "\n")
}
