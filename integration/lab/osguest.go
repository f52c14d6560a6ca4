package lab

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// An OS guest is a lab guest with a real operating system and network:
// Debian's kernel, booted straight into an initramfs of busybox-static
// (its init, shell, ip and httpd) and the QEMU guest agent with its
// libraries, with a virtio NIC on a bridge of the host's namespace and the
// guest agent's virtio-serial channel. Its init brings the NIC up with the
// address given on the kernel command line, serves "ready" at
// http://IP/health with busybox httpd, and runs qemu-ga. It boots in a few
// seconds under KVM (longer under TCG). Tests stop and start its service
// and its agent through the agent's guest-exec (GuestExec).
//
// The image (kernel and initramfs) is built from the Debian packages
// linux-image-amd64 (its versioned dependency), busybox-static and
// qemu-guest-agent, downloaded with apt-get download and unpacked with
// dpkg-deb, and cached in OSImageCacheDir: only the first build downloads
// anything (~70 MB).

// OSImage is an OS guest's kernel and initramfs.
type OSImage struct {
	Kernel, Initrd string
}

// OSGuest describes an OS guest.
type OSGuest struct {
	Name string
	// UUID is optional; libvirt makes one up when it is empty.
	UUID string
	// Addr is the guest's address and prefix on the bridge, Gateway its
	// default route (the bridge's address in the host's namespace).
	Addr    netip.Prefix
	Gateway netip.Addr
	// Bridge is the bridge in the host's namespace (Host.AddBridge).
	Bridge string
	// MemoryMiB defaults to 256.
	MemoryMiB int
	// TCG boots the guest under software emulation even in a KVM lab.
	// Under nested KVM (the project's CI machines) a Linux kernel does
	// not get past its decompressor in 90 s, every port I/O being an exit
	// to the outer hypervisor, while TCG boots it to init in about 10 s.
	TCG bool
}

// osImageVersion names the layout of the cached image; change it when the
// init script or the contents change.
const osImageVersion = "osguest-4"

// OSImageCacheDir is where BuildOSImage keeps the image and the packages:
// $VIRTBGP_LAB_CACHE, else /var/cache/virtbgp-lab (outside the repository
// and the lab directory, so that every lab and test run shares it).
func OSImageCacheDir() string {
	if d := os.Getenv("VIRTBGP_LAB_CACHE"); d != "" {
		return d
	}
	return "/var/cache/virtbgp-lab"
}

var osImageMu sync.Mutex // one build at a time in this process

// BuildOSImage returns the OS guest image, building it into the cache
// first if it is not there.
func BuildOSImage(ctx context.Context) (OSImage, error) {
	osImageMu.Lock()
	defer osImageMu.Unlock()
	dir := filepath.Join(OSImageCacheDir(), osImageVersion)
	img := OSImage{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.cpio")}
	if _, err := os.Stat(img.Initrd); err == nil {
		if _, err := os.Stat(img.Kernel); err == nil {
			return img, nil
		}
	}
	if err := buildOSImage(ctx, dir, img); err != nil {
		return OSImage{}, fmt.Errorf("build the OS guest image in %s: %w", dir, err)
	}
	return img, nil
}

// guestModules are the kernel modules the guest loads, in order: virtio
// PCI, the NIC, the virtio-serial console of the guest agent's channel.
var guestModules = []string{
	"drivers/virtio/virtio_ring.ko", "drivers/virtio/virtio.ko",
	"drivers/virtio/virtio_pci_legacy_dev.ko", "drivers/virtio/virtio_pci_modern_dev.ko",
	"drivers/virtio/virtio_pci.ko", "net/core/failover.ko", "drivers/net/net_failover.ko",
	"drivers/net/virtio_net.ko", "drivers/char/virtio_console.ko",
}

// guestInit is the guest's /init. The kernel command line gives
// vb.addr=ADDR/LEN and vb.gw=ADDR.
const guestInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in MODULES; do insmod /lib/modules/$m; done
for w in $(cat /proc/cmdline); do
  case $w in vb.addr=*) addr=${w#vb.addr=};; vb.gw=*) gw=${w#vb.gw=};; esac
done
ip link set lo up
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
ip link set eth0 up
ip addr add $addr dev eth0
ip route add default via $gw
mkdir -p /www /tmp /var/run
echo ready > /www/health
httpd -p 80 -h /www
port=""
i=0
while [ -z "$port" ] && [ $i -lt 100 ]; do
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat $p/name 2>/dev/null)" = org.qemu.guest_agent.0 ] && port=/dev/${p##*/}
  done
  [ -z "$port" ] && sleep 0.1
  i=$((i+1))
done
echo "virtbgp-osguest: up addr=$addr agent=$port" > /dev/console
qemu-ga -m virtio-serial -p $port -t /tmp -f /tmp/qga.pid -d
exec sh -c 'while :; do sleep 3600; done'
`

func buildOSImage(ctx context.Context, dir string, img OSImage) error {
	debs := filepath.Join(OSImageCacheDir(), "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	_ = os.Chown(debs, aptUID(), -1) // apt-get download runs as _apt
	kpkg, err := kernelPackage(ctx)
	if err != nil {
		return err
	}
	pkgs := []string{kpkg, "busybox-static", "qemu-guest-agent"}
	var files []string
	for _, p := range pkgs {
		f, err := download(ctx, debs, p)
		if err != nil {
			return err
		}
		files = append(files, f)
	}
	root, err := os.MkdirTemp(OSImageCacheDir(), "unpack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	for _, f := range files {
		if _, err := run(ctx, "dpkg-deb", "-x", f, root); err != nil {
			return err
		}
	}
	kernels, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	mods, _ := filepath.Glob(filepath.Join(root, "lib", "modules", "*"))
	if len(kernels) != 1 || len(mods) != 1 {
		return fmt.Errorf("%s: want one kernel and one module tree, got %q %q", kpkg, kernels, mods)
	}
	var a cpioWriter
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "www", "etc", "lib", "lib/modules", "lib64", "usr", "usr/sbin", "var", "var/run",
		"lib/x86_64-linux-gnu"} {
		a.dir(d)
	}
	a.file("init", []byte(strings.Replace(guestInit, "MODULES", strings.Join(moduleNames(), " "), 1)), 0o755)
	if err := a.copyFile("bin/busybox", filepath.Join(root, "bin", "busybox"), 0o755); err != nil {
		return err
	}
	for _, m := range guestModules {
		if err := a.copyFile("lib/modules/"+filepath.Base(m), filepath.Join(mods[0], "kernel", m), 0o644); err != nil {
			return err
		}
	}
	qga := filepath.Join(root, "usr", "sbin", "qemu-ga")
	if err := a.copyFile("usr/sbin/qemu-ga", qga, 0o755); err != nil {
		return err
	}
	libs, err := sharedLibs(ctx, qga)
	if err != nil {
		return err
	}
	for _, l := range libs {
		dst := "lib/x86_64-linux-gnu/" + filepath.Base(l)
		if strings.Contains(l, "ld-linux") {
			dst = "lib64/" + filepath.Base(l)
		}
		if err := a.copyFile(dst, l, 0o755); err != nil {
			return err
		}
	}
	a.trailer()
	tmp, err := os.MkdirTemp(OSImageCacheDir(), osImageVersion+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "initrd.cpio"), a.buf.Bytes(), 0o644); err != nil {
		return err
	}
	k, err := os.ReadFile(kernels[0])
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "vmlinuz"), k, 0o644); err != nil {
		return err
	}
	_ = os.RemoveAll(dir)
	return os.Rename(tmp, dir)
}

func moduleNames() []string {
	out := make([]string, len(guestModules))
	for i, m := range guestModules {
		out[i] = filepath.Base(m)
	}
	return out
}

// kernelPackage is the versioned kernel package linux-image-amd64 depends
// on (linux-image-6.1.0-N-amd64).
func kernelPackage(ctx context.Context) (string, error) {
	out, err := run(ctx, "apt-cache", "depends", "linux-image-amd64")
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`Depends: (linux-image-[0-9][^\s]*-amd64)`).FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("apt-cache depends linux-image-amd64: no kernel package in %q (apt-get update?)", out)
	}
	return m[1], nil
}

// download returns the .deb of package pkg in dir, downloading it first if
// none is there.
func download(ctx context.Context, dir, pkg string) (string, error) {
	glob := func() []string {
		fs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
		return fs
	}
	if fs := glob(); len(fs) > 0 {
		return fs[len(fs)-1], nil
	}
	cmd := []string{"sh", "-c", "cd \"$0\" && apt-get download -qq \"$1\"", dir, pkg}
	if _, err := run(ctx, cmd...); err != nil {
		return "", fmt.Errorf("download %s: %w", pkg, err)
	}
	if fs := glob(); len(fs) > 0 {
		return fs[len(fs)-1], nil
	}
	return "", fmt.Errorf("download %s: no .deb in %s afterwards", pkg, dir)
}

// aptUID is the UID of the _apt user (apt-get download drops to it), or
// 0.
func aptUID() int {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 2 && f[0] == "_apt" {
			var uid int
			fmt.Sscan(f[2], &uid)
			return uid
		}
	}
	return 0
}

// sharedLibs lists the host's shared libraries that bin needs (ldd): the
// guest's qemu-ga is Debian's, so the host's Debian libraries fit.
func sharedLibs(ctx context.Context, bin string) ([]string, error) {
	out, err := run(ctx, "ldd", bin)
	if err != nil {
		return nil, err
	}
	var libs []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		case len(f) >= 3 && f[1] == "=>" && f[2] == "not":
			return nil, fmt.Errorf("ldd %s: %s", bin, strings.TrimSpace(l))
		}
	}
	slices.Sort(libs)
	return slices.Compact(libs), nil
}

// cpioWriter writes a newc cpio archive, the initramfs format.
type cpioWriter struct {
	buf bytes.Buffer
	ino int
}

func (w *cpioWriter) entry(name string, mode uint32, data []byte) {
	w.ino++
	fmt.Fprintf(&w.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		w.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	w.buf.WriteString(name)
	w.buf.WriteByte(0)
	w.pad()
	w.buf.Write(data)
	w.pad()
}

func (w *cpioWriter) pad() {
	for w.buf.Len()%4 != 0 {
		w.buf.WriteByte(0)
	}
}

func (w *cpioWriter) dir(name string)                         { w.entry(name, 0o040755, nil) }
func (w *cpioWriter) file(name string, b []byte, perm uint32) { w.entry(name, 0o100000|perm, b) }
func (w *cpioWriter) trailer()                                { w.entry("TRAILER!!!", 0, nil) }

func (w *cpioWriter) copyFile(name, src string, perm uint32) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	w.file(name, b, perm)
	return nil
}

// AddBridge adds a bridge with address addr (the guests' gateway) to the
// host's namespace; it goes away with the namespace.
func (h *Host) AddBridge(ctx context.Context, name string, addr netip.Prefix) error {
	return ipBatch(ctx, h.NS, []string{
		"link add " + name + " type bridge",
		"addr add " + addr.String() + " dev " + name,
		"link set " + name + " up",
	})
}

// OSGuestXML returns the domain XML of g booting img.
func (l *Lab) OSGuestXML(g OSGuest, img OSImage) string {
	typ := "qemu"
	if l.KVM && !g.TCG {
		typ = "kvm"
	}
	mem := g.MemoryMiB
	if mem == 0 {
		mem = 256
	}
	var uuid string
	if g.UUID != "" {
		uuid = "\n  <uuid>" + g.UUID + "</uuid>"
	}
	return fmt.Sprintf(`<domain type='%s'>
  <name>%s</name>%s
  <memory unit='MiB'>%d</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%s</kernel>
    <initrd>%s</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 vb.addr=%s vb.gw=%s</cmdline>
  </os>
  <on_crash>destroy</on_crash>
  <devices>
    <interface type='bridge'><source bridge='%s'/><model type='virtio'/></interface>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <serial type='file'><source path='%s'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
`, typ, g.Name, uuid, mem, img.Kernel, img.Initrd, g.Addr, g.Gateway, g.Bridge, l.consoleLog(g.Name))
}

// consoleLog is the file of guest name's serial console.
func (l *Lab) consoleLog(name string) string { return filepath.Join(l.Dir, "console-"+name+".log") }

// ConsoleLog returns what guest name wrote to its serial console.
func (l *Lab) ConsoleLog(name string) string {
	b, _ := os.ReadFile(l.consoleLog(name))
	return string(b)
}

// CreateOSGuest creates and starts the transient OS guest g from img, and
// waits until its guest agent answers (its service runs by then).
func (h *Host) CreateOSGuest(ctx context.Context, g OSGuest, img OSImage) error {
	f, err := os.CreateTemp(h.Dir, g.Name+"-*.xml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := io.WriteString(f, h.lab.OSGuestXML(g, img)); err != nil {
		f.Close()
		return err
	}
	f.Close()
	if _, err := h.Virsh(ctx, "create", f.Name()); err != nil {
		return fmt.Errorf("guest %s on %s: %w", g.Name, h.Name, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := Eventually(wctx, 200*time.Millisecond, func(ctx context.Context) error {
		_, err := h.AgentCommand(ctx, g.Name, `{"execute":"guest-ping"}`)
		return err
	}); err != nil {
		return fmt.Errorf("guest %s on %s: guest agent: %w (console: %q)", g.Name, h.Name, err, lastBytes(h.lab.ConsoleLog(g.Name), 400))
	}
	return nil
}

// AgentCommand sends a guest agent command (JSON) to guest name and
// returns the answer.
func (h *Host) AgentCommand(ctx context.Context, name, cmd string) (string, error) {
	return h.Virsh(ctx, "qemu-agent-command", name, "--timeout", "2", cmd)
}

// GuestExec runs path with args in guest name through its guest agent
// (guest-exec) and, unless nowait, waits for it to end and returns its
// exit code and output.
func (h *Host) GuestExec(ctx context.Context, name string, nowait bool, path string, args ...string) (int, string, error) {
	req, _ := json.Marshal(map[string]any{"execute": "guest-exec", "arguments": map[string]any{
		"path": path, "arg": args, "capture-output": !nowait}})
	out, err := h.AgentCommand(ctx, name, string(req))
	if err != nil {
		return -1, "", fmt.Errorf("guest-exec %s in %s: %w", path, name, err)
	}
	if nowait {
		return 0, "", nil
	}
	var started struct {
		Return struct {
			PID int `json:"pid"`
		} `json:"return"`
	}
	if err := json.Unmarshal([]byte(out), &started); err != nil {
		return -1, "", fmt.Errorf("guest-exec %s in %s: %q: %w", path, name, out, err)
	}
	var st struct {
		Return struct {
			Exited   bool   `json:"exited"`
			ExitCode int    `json:"exitcode"`
			OutData  string `json:"out-data"`
		} `json:"return"`
	}
	err = Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		out, err := h.AgentCommand(ctx, name, fmt.Sprintf(`{"execute":"guest-exec-status","arguments":{"pid":%d}}`, started.Return.PID))
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return err
		}
		if !st.Return.Exited {
			return errors.New("still running")
		}
		return nil
	})
	if err != nil {
		return -1, "", fmt.Errorf("guest-exec %s in %s: %w", path, name, err)
	}
	b, _ := base64.StdEncoding.DecodeString(st.Return.OutData)
	return st.Return.ExitCode, string(b), nil
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
