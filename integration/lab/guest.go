package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Guest describes a lab guest: diskless, no devices, 64 MiB and one vCPU
// unless told otherwise, so that it starts in well under a second (SeaBIOS
// then finds nothing to boot and idles, which is all a guest needs to be
// here).
//
// Such a guest's memory is all zero pages, which migration hardly sends: a
// live migration takes ~0.5 s even with --bandwidth 1, too short to abort
// it or switch it to post-copy on purpose. With FillMiB the guest boots
// instead into a tiny kernel that fills that much of its memory with
// non-zero data and halts, and a migration has to copy all of it: 8 MiB
// take ~8 s at --bandwidth 1 (MiB/s), a fraction of a second unlimited.
type Guest struct {
	Name string
	// UUID is optional; libvirt makes one up when it is empty.
	UUID string
	// MemoryMiB defaults to 64 (at least 8).
	MemoryMiB int
	// FillMiB > 0 boots the fill-memory kernel ([FillMemoryKernel]); at
	// most MemoryMiB-4. Filling takes a while under nested KVM (~0.2 s per
	// MiB on the project's machines, every page is a first touch): wait
	// with [Host.WaitGuestHalted].
	FillMiB int
	// Kernel is a kernel image to boot (<os><kernel>), for a test's own
	// guest code; the lab sets it for FillMiB.
	Kernel string
}

func (g Guest) memMiB() int {
	if g.MemoryMiB < 8 {
		return 64
	}
	return g.MemoryMiB
}

// FillMemoryKernel returns a multiboot (version 1, a.out kludge) kernel:
// loaded at 1 MiB, it fills fillMiB MiB of guest memory from 2 MiB on with
// a non-zero pattern (rep stosd), then halts with interrupts off. 53 bytes;
// QEMU boots it with -kernel. The guest needs fillMiB+4 MiB of memory.
func FillMemoryKernel(fillMiB int) []byte {
	const (
		magic = 0x1BADB002
		flags = 0x00010000 // the address fields are valid
		load  = 0x00100000
	)
	le := binary.LittleEndian
	sum := uint32(magic) + flags
	b := make([]byte, 0, 64)
	for _, v := range []uint32{magic, flags, -sum, load, load, 0, 0, load + 32} {
		b = le.AppendUint32(b, v) // header_addr, load_addr, load_end (all), bss_end (none), entry
	}
	b = append(b, 0xBF) // mov edi, 2 MiB
	b = le.AppendUint32(b, 2<<20)
	b = append(b, 0xB9) // mov ecx, dwords
	b = le.AppendUint32(b, uint32(fillMiB<<20/4))
	b = append(b, 0xB8) // mov eax, pattern
	b = le.AppendUint32(b, 0x5a5a5a5a)
	return append(b,
		0xF3, 0xAB, // rep stosd
		0xFA,       // cli
		0xF4,       // hlt
		0xEB, 0xFD) // jmp hlt
}

// GuestXML returns the domain XML of g: type 'kvm', or 'qemu' (TCG) when
// kvm is false.
func GuestXML(g Guest, kvm bool) string {
	typ := "qemu"
	if kvm {
		typ = "kvm"
	}
	var uuid, kernel string
	if g.UUID != "" {
		uuid = fmt.Sprintf("\n  <uuid>%s</uuid>", g.UUID)
	}
	if g.Kernel != "" {
		kernel = fmt.Sprintf("<kernel>%s</kernel>", g.Kernel)
	}
	return fmt.Sprintf(`<domain type='%s'>
  <name>%s</name>%s
  <memory unit='MiB'>%d</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>%s</os>
  <on_crash>destroy</on_crash>
</domain>
`, typ, g.Name, uuid, g.memMiB(), kernel)
}

// GuestXML returns the domain XML of g for this lab (KVM or TCG), writing
// the fill-memory kernel into the lab directory if g wants it.
func (l *Lab) GuestXML(g Guest) (string, error) {
	if g.FillMiB > 0 && g.Kernel == "" {
		if g.FillMiB > g.memMiB()-4 {
			return "", fmt.Errorf("guest %s: FillMiB %d needs MemoryMiB >= %d", g.Name, g.FillMiB, g.FillMiB+4)
		}
		k := filepath.Join(l.Dir, fmt.Sprintf("fill-memory-%dm.bin", g.FillMiB))
		if _, err := os.Stat(k); err != nil {
			if err := os.WriteFile(k, FillMemoryKernel(g.FillMiB), 0o644); err != nil {
				return "", fmt.Errorf("guest %s: fill-memory kernel: %w", g.Name, err)
			}
		}
		g.Kernel = k
	}
	return GuestXML(g, l.KVM), nil
}

// WaitGuestHalted waits until the vCPU of guest name has halted: for a
// FillMiB guest, until its memory is full.
func (h *Host) WaitGuestHalted(ctx context.Context, name string) error {
	err := Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		// "info cpus" does not say "halted" for KVM vCPUs; the register
		// dump's HLT flag does, for KVM and TCG.
		out, err := h.Virsh(ctx, "qemu-monitor-command", name, "--hmp", "info registers")
		if err != nil {
			return err
		}
		if !strings.Contains(out, " HLT=1") {
			return fmt.Errorf("vCPU not halted yet")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("guest %s on %s: %w", name, h.Name, err)
	}
	return nil
}

// Virsh runs virsh against the host's libvirtd and returns its stdout;
// errors carry virsh's stderr.
func (h *Host) Virsh(ctx context.Context, args ...string) (string, error) {
	return run(ctx, append([]string{"virsh", "-c", h.URI, "-q"}, args...)...)
}

// virshXML runs virsh with a domain XML file as the last argument.
func (h *Host) virshXML(ctx context.Context, g Guest, args ...string) error {
	f, err := os.CreateTemp(h.Dir, g.Name+"-*.xml")
	if err != nil {
		return fmt.Errorf("guest %s on %s: %w", g.Name, h.Name, err)
	}
	defer os.Remove(f.Name())
	x, err := h.lab.GuestXML(g)
	if err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(x); err != nil {
		f.Close()
		return fmt.Errorf("guest %s on %s: %w", g.Name, h.Name, err)
	}
	f.Close()
	if _, err := h.Virsh(ctx, append(args, f.Name())...); err != nil {
		return fmt.Errorf("guest %s on %s: %w", g.Name, h.Name, err)
	}
	return nil
}

// DefineGuest defines (persistently) guest g on the host.
func (h *Host) DefineGuest(ctx context.Context, g Guest) error { return h.virshXML(ctx, g, "define") }

// CreateGuest creates and starts a transient guest g on the host.
func (h *Host) CreateGuest(ctx context.Context, g Guest) error { return h.virshXML(ctx, g, "create") }

// domCmd runs "virsh <cmd> <name> [args]" and wraps its error.
func (h *Host) domCmd(ctx context.Context, cmd, name string, args ...string) (string, error) {
	out, err := h.Virsh(ctx, append([]string{cmd, name}, args...)...)
	if err != nil {
		return out, fmt.Errorf("%s %s on %s: %w", cmd, name, h.Name, err)
	}
	return out, nil
}

// StartGuest starts the defined guest name.
func (h *Host) StartGuest(ctx context.Context, name string) error {
	_, err := h.domCmd(ctx, "start", name)
	return err
}

// DestroyGuest stops guest name at once (virsh destroy).
func (h *Host) DestroyGuest(ctx context.Context, name string) error {
	_, err := h.domCmd(ctx, "destroy", name)
	return err
}

// ShutdownGuest asks guest name to shut down (virsh shutdown --mode acpi);
// a lab guest has no OS, so it ignores the request: this is for tests of
// the request itself.
func (h *Host) ShutdownGuest(ctx context.Context, name string) error {
	_, err := h.domCmd(ctx, "shutdown", name)
	return err
}

// SuspendGuest pauses guest name.
func (h *Host) SuspendGuest(ctx context.Context, name string) error {
	_, err := h.domCmd(ctx, "suspend", name)
	return err
}

// ResumeGuest resumes the paused guest name.
func (h *Host) ResumeGuest(ctx context.Context, name string) error {
	_, err := h.domCmd(ctx, "resume", name)
	return err
}

// UndefineGuest removes the definition of guest name.
func (h *Host) UndefineGuest(ctx context.Context, name string) error {
	_, err := h.domCmd(ctx, "undefine", name)
	return err
}

// GuestState returns virsh domstate --reason of guest name, for example
// "running (booted)", "paused (migration)", "shut off (destroyed)".
func (h *Host) GuestState(ctx context.Context, name string) (string, error) {
	out, err := h.domCmd(ctx, "domstate", name, "--reason")
	return strings.TrimSpace(out), err
}

// GuestUUID returns the UUID of guest name.
func (h *Host) GuestUUID(ctx context.Context, name string) (string, error) {
	out, err := h.domCmd(ctx, "domuuid", name)
	return strings.TrimSpace(out), err
}

// Guests returns the names of the host's guests: running ones, or all
// defined ones too with all.
func (h *Host) Guests(ctx context.Context, all bool) ([]string, error) {
	args := []string{"list", "--name"}
	if all {
		args = append(args, "--all")
	}
	out, err := h.Virsh(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("list guests on %s: %w", h.Name, err)
	}
	return strings.Fields(out), nil
}

// destroyAll destroys every running guest of the host, if its libvirtd
// answers.
func (h *Host) destroyAll(ctx context.Context) {
	if h.SupervisorPID() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	names, err := h.Guests(ctx, false)
	if err != nil {
		return
	}
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.DestroyGuest(ctx, n); err != nil {
				h.lab.log.Warn("teardown: destroy guest", "host", h.Name, "guest", n, "error", err)
			}
		}()
	}
	wg.Wait()
}

// JobInfo is the output of virsh domjobinfo: "Time elapsed" -> "652 ms".
type JobInfo map[string]string

// Millis returns the value of key in milliseconds ("Total downtime": "20
// ms"), and whether it was there.
func (j JobInfo) Millis(key string) (float64, bool) {
	f := strings.Fields(j[key])
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, false
	}
	if len(f) > 1 {
		switch f[1] {
		case "s":
			v *= 1000
		case "us":
			v /= 1000
		}
	}
	return v, true
}

// Downtime returns the guest's downtime of a completed migration.
func (j JobInfo) Downtime() (time.Duration, bool) {
	ms, ok := j.Millis("Total downtime")
	return time.Duration(ms * float64(time.Millisecond)), ok
}

// JobInfo returns virsh domjobinfo of guest name; with completed, the
// statistics of the last completed job (a migration's downtime, on either
// side; the source only while it still knows the guest).
func (h *Host) JobInfo(ctx context.Context, name string, completed bool) (JobInfo, error) {
	args := []string{"domjobinfo", name}
	if completed {
		args = append(args, "--completed")
	}
	out, err := h.Virsh(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("domjobinfo %s on %s: %w", name, h.Name, err)
	}
	return ParseJobInfo(out), nil
}

// ParseJobInfo parses virsh domjobinfo output.
func ParseJobInfo(out string) JobInfo {
	j := JobInfo{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			j[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return j
}

// AbortJob aborts the guest's running job (a migration, on the source).
func (h *Host) AbortJob(ctx context.Context, name string) error {
	_, err := h.domCmd(ctx, "domjobabort", name)
	return err
}

// MigratePostcopy switches the running migration of guest name (on the
// source) to post-copy.
func (h *Host) MigratePostcopy(ctx context.Context, name string) error {
	_, err := h.domCmd(ctx, "migrate-postcopy", name)
	return err
}

// SetMigrateSpeed sets the bandwidth (MiB/s) of guest name's migration.
func (h *Host) SetMigrateSpeed(ctx context.Context, name string, mibps int) error {
	_, err := h.domCmd(ctx, "migrate-setspeed", name, strconv.Itoa(mibps))
	return err
}

// MigrateOptions choose a variant of virsh migrate --live.
type MigrateOptions struct {
	// P2P: --p2p, the source libvirtd talks to the destination's at
	// qemu+tcp://<dest-ip>/system.
	P2P bool
	// TCP: a client-managed migration to the destination's
	// qemu+tcp://<dest-ip>/system, with virsh run inside the source's
	// namespace to reach it (as an operator on the source host would).
	TCP bool
	// Persistent and UndefineSource: --persistent --undefinesource.
	Persistent, UndefineSource bool
	// Postcopy: --postcopy (enable post-copy; switch with MigratePostcopy,
	// or add --timeout N --timeout-postcopy in Extra).
	Postcopy bool
	// Bandwidth in MiB/s (--bandwidth); 0: unlimited. 1 makes a 64 MiB
	// guest take about a minute, time enough to abort it.
	Bandwidth int
	// Extra virsh migrate arguments.
	Extra []string
}

// MigrateArgs returns the virsh migrate command line for guest name from
// one host to another, and the namespace to run it in ("" for the root
// namespace).
func (l *Lab) MigrateArgs(name string, from, to *Host, o MigrateOptions) (argv []string, ns string) {
	dest := to.URI
	if o.P2P || o.TCP {
		dest = to.TCPURI
	}
	argv = []string{"virsh", "-c", from.URI, "migrate", "--live", "--verbose"}
	if o.P2P {
		argv = append(argv, "--p2p")
	}
	if o.Persistent {
		argv = append(argv, "--persistent")
	}
	if o.UndefineSource {
		argv = append(argv, "--undefinesource")
	}
	if o.Postcopy {
		argv = append(argv, "--postcopy")
	}
	if o.Bandwidth > 0 {
		argv = append(argv, "--bandwidth", strconv.Itoa(o.Bandwidth))
	}
	argv = append(argv, o.Extra...)
	argv = append(argv, name, dest)
	if o.TCP && !o.P2P {
		ns = from.NS
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	return argv, ns
}

// Migration is a running virsh migrate.
type Migration struct {
	// Args is the command line.
	Args []string
	// Started is when virsh was started.
	Started time.Time

	done   chan struct{}
	err    error
	stderr bytes.Buffer
	ended  time.Time
}

// StartMigration starts live-migrating guest name from one host to another
// and returns at once; Wait for its end.
func (l *Lab) StartMigration(ctx context.Context, name string, from, to *Host, o MigrateOptions) (*Migration, error) {
	argv, _ := l.MigrateArgs(name, from, to, o)
	m := &Migration{Args: argv, done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout = &m.stderr // --verbose progress; kept with stderr for errors
	cmd.Stderr = &m.stderr
	cmd.WaitDelay = time.Second
	m.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("migrate %s %s -> %s: %w", name, from.Name, to.Name, err)
	}
	l.log.Debug("migration started", "guest", name, "from", from.Name, "to", to.Name, "cmd", strings.Join(argv, " "))
	go func() {
		err := cmd.Wait()
		m.ended = time.Now()
		if err != nil {
			m.err = fmt.Errorf("migrate %s %s -> %s: %w", name, from.Name, to.Name,
				&CommandError{Args: argv, Err: err, Stderr: lastLines(m.stderr.String(), 5)})
		}
		close(m.done)
	}()
	return m, nil
}

// Done is closed when the migration has ended.
func (m *Migration) Done() <-chan struct{} { return m.done }

// Wait waits for the migration to end and returns its error, with virsh's
// stderr.
func (m *Migration) Wait(ctx context.Context) error {
	select {
	case <-m.done:
		return m.err
	case <-ctx.Done():
		return fmt.Errorf("wait for migration: %w", ctx.Err())
	}
}

// Took is how long virsh migrate ran (0 while it runs).
func (m *Migration) Took() time.Duration {
	select {
	case <-m.done:
		return m.ended.Sub(m.Started)
	default:
		return 0
	}
}

// Migrate live-migrates guest name from one host to another and waits for
// the end.
func (l *Lab) Migrate(ctx context.Context, name string, from, to *Host, o MigrateOptions) error {
	m, err := l.StartMigration(ctx, name, from, to, o)
	if err != nil {
		return err
	}
	return m.Wait(ctx)
}

// lastLines returns the last n non-empty lines of s (virsh --verbose
// progress lines are separated by carriage returns).
func lastLines(s string, n int) string {
	s = strings.ReplaceAll(s, "\r", "\n")
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WriteGuestXML writes the XML of g to a file in the lab directory and
// returns its path (for an operator's virsh create/define).
func (l *Lab) WriteGuestXML(g Guest) (string, error) {
	x, err := l.GuestXML(g)
	if err != nil {
		return "", err
	}
	p := filepath.Join(l.Dir, g.Name+".xml")
	if err := os.WriteFile(p, []byte(x), 0o644); err != nil {
		return "", fmt.Errorf("guest xml: %w", err)
	}
	return p, nil
}
