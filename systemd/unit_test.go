package systemd_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/virtbgp/virtbgp/internal/config"
)

const (
	unitName   = "virtbgp.service"
	dropInName = "dedicated-user.conf"
	// installedBinary is where the unit expects virtbgp (README, "Install").
	installedBinary = "/usr/sbin/virtbgp"
	// defaultConfig is cmd/virtbgp's default --config.
	defaultConfig = "/etc/virtbgp/virtbgp.yaml"
)

// unitFile is a parsed unit file or drop-in: every assignment, in order.
type unitFile struct {
	path   string
	values map[string]map[string][]string // section -> key -> values
}

// parseUnit reads a unit file the way systemd does for what the tests need:
// [Section] headers, Key=Value lines, # and ; comments, and lines continued
// with a trailing backslash.
func parseUnit(t *testing.T, path string) *unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := &unitFile{path: path, values: map[string]map[string][]string{}}
	section := ""
	sc := bufio.NewScanner(f)
	lineNo := 0
	var cont strings.Builder
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if cont.Len() == 0 && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cont.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cont.WriteString(line)
		line = cont.String()
		cont.Reset()
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			if u.values[section] == nil {
				u.values[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: not an assignment in a section: %q", path, lineNo, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		u.values[section][k] = append(u.values[section][k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// merge returns u with the assignments of the drop-ins applied after its own.
func (u *unitFile) merge(dropIns ...*unitFile) *unitFile {
	m := &unitFile{path: u.path, values: map[string]map[string][]string{}}
	for _, f := range append([]*unitFile{u}, dropIns...) {
		for sec, kv := range f.values {
			if m.values[sec] == nil {
				m.values[sec] = map[string][]string{}
			}
			for k, vs := range kv {
				m.values[sec][k] = append(m.values[sec][k], vs...)
			}
		}
	}
	return m
}

// last is the value in force of a single-valued setting.
func (u *unitFile) last(section, key string) (string, bool) {
	vs := u.values[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// list is the value in force of a list setting: the space-separated items
// of every assignment, an empty assignment resetting the list.
func (u *unitFile) list(section, key string) []string {
	var items []string
	for _, v := range u.values[section][key] {
		if v == "" {
			items = nil
			continue
		}
		items = append(items, strings.Fields(v)...)
	}
	return items
}

func TestUnitDirectives(t *testing.T) {
	u := parseUnit(t, unitName)

	for _, w := range []struct{ section, key, want string }{
		// READY=1 after the first full sync, from the main process only.
		{"Service", "Type", "notify"},
		{"Service", "NotifyAccess", "main"},
		{"Service", "WatchdogSec", "30s"},
		{"Service", "ExecStartPre", installedBinary + " check --config " + defaultConfig},
		{"Service", "ExecStart", installedBinary + " run --config " + defaultConfig},
		{"Service", "ExecReload", "/bin/kill -HUP $MAINPID"},
		{"Service", "Restart", "on-failure"},
		// SIGTERM is the planned restart: sessions close without a
		// NOTIFICATION, so peers keep the routes (graceful restart).
		{"Service", "KillSignal", "SIGTERM"},
		{"Service", "StateDirectory", "virtbgp"},
		{"Service", "RuntimeDirectory", "virtbgp"},
		{"Service", "NoNewPrivileges", "yes"},
		{"Service", "ProtectSystem", "strict"},
		{"Service", "ProtectHome", "yes"},
		{"Service", "PrivateTmp", "yes"},
		{"Service", "ProtectKernelTunables", "yes"},
		{"Service", "ProtectKernelModules", "yes"},
		{"Service", "ProtectKernelLogs", "yes"},
		{"Service", "ProtectControlGroups", "yes"},
		{"Service", "ProtectClock", "yes"},
		{"Service", "ProtectHostname", "yes"},
		{"Service", "RestrictNamespaces", "yes"},
		{"Service", "RestrictRealtime", "yes"},
		{"Service", "LockPersonality", "yes"},
		{"Service", "MemoryDenyWriteExecute", "yes"},
		{"Service", "SystemCallArchitectures", "native"},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		got, ok := u.last(w.section, w.key)
		if !ok {
			t.Errorf("[%s] %s= missing, want %s=%s", w.section, w.key, w.key, w.want)
		} else if got != w.want {
			t.Errorf("[%s] %s=%s, want %s=%s", w.section, w.key, got, w.key, w.want)
		}
	}
	for _, key := range []string{"RestartSec", "TimeoutStopSec", "TimeoutStartSec"} {
		if _, ok := u.last("Service", key); !ok {
			t.Errorf("[Service] %s= missing", key)
		}
	}
	if p, _ := u.last("Service", "RuntimeDirectoryPreserve"); p != "yes" && p != "restart" {
		t.Errorf("RuntimeDirectoryPreserve=%q, want restart or yes: the control socket's directory must survive a restart", p)
	}

	// Ordering after network and libvirt (monolithic and modular).
	after := u.list("Unit", "After")
	for _, want := range []string{"network-online.target", "libvirtd.service", "virtqemud.socket"} {
		if !slices.Contains(after, want) {
			t.Errorf("After= lacks %s (has %v)", want, after)
		}
	}
	if wants := u.list("Unit", "Wants"); !slices.Contains(wants, "network-online.target") {
		t.Errorf("Wants= lacks network-online.target (has %v)", wants)
	}
	// Pulling a libvirt unit in would start the monolithic libvirtd on a
	// host running the modular daemons, whose units conflict with it (and
	// a drop-in cannot take a Wants= back). Ordering only.
	for _, key := range []string{"Wants", "Requires", "Requisite", "BindsTo", "PartOf", "Upholds"} {
		for _, dep := range u.list("Unit", key) {
			if strings.HasPrefix(dep, "libvirtd") || regexp.MustCompile(`^virt[a-z]*d\b`).MatchString(dep) {
				t.Errorf("%s=%s: virtbgp must not pull in or bind to a libvirt unit (it would start libvirtd "+
					"next to virtqemud & co., which conflict with it); order with After= only", key, dep)
			}
		}
	}

	// Minimal capabilities: port 179 only. TCP MD5 needs none.
	if caps := u.list("Service", "CapabilityBoundingSet"); !slices.Equal(caps, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Errorf("CapabilityBoundingSet=%v, want exactly CAP_NET_BIND_SERVICE", caps)
	}
	fams := u.list("Service", "RestrictAddressFamilies")
	slices.Sort(fams)
	if want := []string{"AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"}; !slices.Equal(fams, want) {
		t.Errorf("RestrictAddressFamilies=%v, want %v", fams, want)
	}
	// Root by default (qemu:///system); dedicated-user.conf changes that.
	if user, ok := u.last("Service", "User"); ok {
		t.Errorf("User=%s in the unit; running as another user belongs in the drop-in %s", user, dropInName)
	}

	// The directories systemd makes writable are the ones virtbgp uses.
	if sd, _ := u.last("Service", "StateDirectory"); "/var/lib/"+sd != config.DefaultStateDir {
		t.Errorf("StateDirectory=%s is /var/lib/%s, but virtbgp's default state-dir is %s", sd, sd, config.DefaultStateDir)
	}
	if rd, _ := u.last("Service", "RuntimeDirectory"); "/run/"+rd != filepath.Dir(config.DefaultControlSocket) {
		t.Errorf("RuntimeDirectory=%s is /run/%s, but virtbgp's default control socket is %s", rd, rd, config.DefaultControlSocket)
	}
}

func TestDropInDirectives(t *testing.T) {
	unit := parseUnit(t, unitName)
	d := parseUnit(t, dropInName)
	m := unit.merge(d)
	if u, _ := m.last("Service", "User"); u != "virtbgp" {
		t.Errorf("User=%q, want virtbgp", u)
	}
	if g := m.list("Service", "SupplementaryGroups"); !slices.Contains(g, "libvirt") {
		t.Errorf("SupplementaryGroups=%v, want libvirt (access to qemu:///system)", g)
	}
	bounding := m.list("Service", "CapabilityBoundingSet")
	for _, c := range m.list("Service", "AmbientCapabilities") {
		if !slices.Contains(bounding, c) {
			t.Errorf("AmbientCapabilities has %s, outside CapabilityBoundingSet=%v: it would be dropped", c, bounding)
		}
	}
	// The drop-in changes only who runs virtbgp, not the sandbox.
	for sec, kv := range d.values {
		for k := range kv {
			if !slices.Contains([]string{"User", "Group", "SupplementaryGroups", "AmbientCapabilities"}, k) {
				t.Errorf("drop-in sets [%s] %s=; it should only change the user", sec, k)
			}
		}
	}
}

// systemdAnalyze returns the path of systemd-analyze.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found (%v): it comes with the Debian package systemd, "+
			"which scripts/deps.sh installs; no running systemd is needed", err)
	}
	return p
}

// analyze runs systemd-analyze on the unit staged in dir, with its messages
// on stderr whatever the environment says about the journal, and with a
// unit search path of dir and the distribution's unit directories only:
// not /etc/systemd/system or /run/systemd, whose drop-ins for a
// virtbgp.service installed on this host would otherwise apply.
func analyze(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	bin := systemdAnalyze(t)
	path := []string{dir}
	if out, err := exec.Command(bin, "unit-paths").Output(); err == nil {
		for _, p := range strings.Fields(string(out)) {
			if strings.HasPrefix(p, "/lib/") || strings.HasPrefix(p, "/usr/lib/") {
				path = append(path, p)
			}
		}
	}
	if len(path) == 1 {
		path = append(path, "/lib/systemd/system", "/usr/lib/systemd/system")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_TARGET=console", "SYSTEMD_LOG_COLOR=0",
		"SYSTEMD_COLORS=0", "SYSTEMD_PAGER=", "SYSTEMD_LOG_LEVEL=info",
		"SYSTEMD_UNIT_PATH="+strings.Join(path, ":"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// stage copies the unit (through edit, if not nil) and the named drop-ins
// into a temporary directory, as virtbgp.service and virtbgp.service.d/,
// with the binary path pointing at an executable that exists there:
// verify checks that ExecStart='s command exists. It returns the unit's
// path.
func stage(t *testing.T, edit func(string) string, dropIns ...string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "virtbgp-unit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "bin", "virtbgp")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(unitName)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), installedBinary) {
		t.Fatalf("%s does not mention %s", unitName, installedBinary)
	}
	unit := strings.ReplaceAll(string(text), installedBinary, bin)
	if edit != nil {
		unit = edit(unit)
	}
	path := filepath.Join(dir, unitName)
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range dropIns {
		text, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		dd := filepath.Join(dir, unitName+".d")
		if err := os.MkdirAll(dd, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dd, filepath.Base(d)), text, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// otherUnit matches a message that names another unit first, such as a
// complaint about a unit of the host that verify loaded as a dependency.
var otherUnit = regexp.MustCompile(`^(?:\S*/)?([A-Za-z0-9:_.@\\-]+\.(?:service|socket|target|mount|automount|swap|path|timer|slice|scope|device))(?::|\s)`)

// verify runs `systemd-analyze verify` on the staged unit and returns the
// problems it reports about it: every line of output except those about
// other units (logged), and the exit status.
func verify(t *testing.T, unitPath string) []string {
	t.Helper()
	dir := filepath.Dir(unitPath)
	out, err := analyze(t, dir, "verify", "--man=no", unitPath)
	var problems []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		if m := otherUnit.FindStringSubmatch(line); m != nil && m[1] != unitName && !strings.Contains(line, dir) {
			t.Logf("systemd-analyze verify, about another unit: %s", line)
			continue
		}
		problems = append(problems, line)
	}
	if err != nil {
		problems = append(problems, "systemd-analyze verify: "+err.Error())
	}
	return problems
}

func TestVerify(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dropIns []string
	}{
		{"unit", nil},
		{"unit with " + dropInName, []string{dropInName}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if problems := verify(t, stage(t, nil, tc.dropIns...)); len(problems) > 0 {
				t.Errorf("systemd-analyze verify:\n%s", strings.Join(problems, "\n"))
			}
		})
	}
}

// TestVerifyCatches makes sure the check above would see a broken unit:
// systemd-analyze reports such mistakes as messages and still exits 0.
func TestVerifyCatches(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string
	}{
		{"bad value", "WatchdogSec=30s", "WatchdogSec=thirty"},
		{"unknown key", "NoNewPrivileges=yes", "NoNewPrivilege=yes"},
		{"missing binary", "ExecStart=", "ExecStart=/nonexistent/virtbgp run\n#"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := stage(t, func(s string) string {
				if !strings.Contains(s, tc.old) {
					t.Fatalf("unit lacks %q", tc.old)
				}
				return strings.Replace(s, tc.old, tc.new, 1)
			})
			if problems := verify(t, path); len(problems) == 0 {
				t.Errorf("verify found nothing wrong after replacing %q with %q", tc.old, tc.new)
			} else {
				t.Logf("reported: %s", strings.Join(problems, " | "))
			}
		})
	}
}

// TestSecurityExposure keeps the sandbox from eroding unnoticed:
// `systemd-analyze security` rates the unit 2.1 (0 = fully locked down,
// 10 = no sandbox); most of the rest is root, the network and port 179,
// which virtbgp needs.
func TestSecurityExposure(t *testing.T) {
	const threshold = "25" // 2.5, in tenths
	for _, dropIns := range [][]string{nil, {dropInName}} {
		path := stage(t, nil, dropIns...)
		out, err := analyze(t, filepath.Dir(path), "security", "--offline=yes", "--threshold="+threshold, "--no-pager", path)
		if err != nil {
			t.Errorf("systemd-analyze security (drop-ins %v): exposure above %s/10 or error: %v\n%s",
				dropIns, threshold[:1]+"."+threshold[1:], err, out)
			continue
		}
		if i := strings.Index(out, "Overall exposure level"); i >= 0 {
			t.Logf("drop-ins %v: %s", dropIns, strings.TrimSpace(out[i:]))
		}
	}
}
