package lab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The lab runs the guide's ToR configs as they are: BIRD includes
// docs/tor/bird.conf, bgpd.conf has docs/tor/frr.conf byte for byte, and
// the daemons' own parsers accept the whole (the lab's start checks that
// bgpd loads it without an error; TestToRGuide that it does what the guide
// says).
func TestToRConfigsAreTheGuides(t *testing.T) {
	root, err := findModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l := newLab(Options{Dir: dir, Prefix: "p-", ToRASN: DefaultToRASN, HostAASN: DefaultHostAASN, HostBASN: DefaultHostBASN}, nil)

	birdDoc := filepath.Join(root, "docs", "tor", "bird.conf")
	bird, err := l.BIRD.config()
	if err != nil {
		t.Fatal(err)
	}
	if want := `include "` + birdDoc + `";`; !strings.Contains(bird, "\n"+want+"\n") {
		t.Errorf("bird.conf does not include the guide's (%s):\n%s", want, bird)
	}
	for _, p := range l.torPeers(true) {
		fam := "4"
		if p.V6 {
			fam = "6"
		}
		if want := "protocol bgp " + p.Name + " from virtbgp" + fam + " {"; !strings.Contains(bird, want) {
			t.Errorf("bird.conf has no %q:\n%s", want, bird)
		}
	}

	frrDoc, err := os.ReadFile(filepath.Join(root, "docs", "tor", "frr.conf"))
	if err != nil {
		t.Fatal(err)
	}
	frr, err := l.FRR.config()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(frr, "\n"+string(frrDoc)) {
		t.Errorf("bgpd.conf does not have docs/tor/frr.conf as it is:\n%s", frr)
	}
	for _, p := range l.torPeers(false) {
		fam := "4"
		if p.V6 {
			fam = "6"
		}
		if want := " neighbor " + p.Addr.String() + " peer-group VIRTBGP" + fam + "\n"; !strings.Contains(frr, want) {
			t.Errorf("bgpd.conf has no %q:\n%s", want, frr)
		}
	}

	// README's "Configure your ToR" has both files as they are.
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	birdText, err := os.ReadFile(birdDoc)
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string][]byte{"docs/tor/bird.conf": birdText, "docs/tor/frr.conf": frrDoc} {
		if !strings.Contains(string(readme), "\n```\n"+string(text)+"```\n") {
			t.Errorf("README.md does not have %s as it is in a code block", name)
		}
	}

	// A lab whose ToRs are of another AS than the guide's is refused
	// rather than run with a config that is not the guide's.
	other := newLab(Options{Dir: dir, Prefix: "p-", ToRASN: 64999, HostAASN: DefaultHostAASN, HostBASN: DefaultHostBASN}, nil)
	if _, err := other.FRR.config(); err == nil || !strings.Contains(err.Error(), "AS 65000") {
		t.Errorf("FRR config for AS 64999: %v", err)
	}

	// The daemons' parsers: bird -p reads the config with the guide's
	// file included; vtysh --dryrun checks every line of bgpd.conf against
	// FRR's grammar (with an empty vtysh.conf of its own: /etc/frr's is not
	// readable for everyone).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := os.WriteFile(filepath.Join(dir, "vtysh.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		bin, file, text string
		args            []string
	}{
		{"bird", "bird.conf", bird, []string{"-p", "-c"}},
		{"vtysh", "bgpd.conf", frr, []string{"--config_dir", dir, "--dryrun", "-f"}},
	} {
		if _, err := exec.LookPath(c.bin); err != nil {
			t.Errorf("%s: %v (the lab needs it: scripts/deps.sh installs it)", c.bin, err)
			continue
		}
		f := filepath.Join(dir, c.file)
		if err := os.WriteFile(f, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(ctx, c.bin, append(c.args, f)...).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("%s %s %s: %v\n%s", c.bin, strings.Join(c.args, " "), f, err, out)
		}
	}
	// And the parsers do refuse a broken config (the check checks).
	broken := strings.Replace(bird, "router id", "router idd", 1)
	f := filepath.Join(dir, "broken.conf")
	if err := os.WriteFile(f, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, "bird", "-p", "-c", f).CombinedOutput(); err == nil {
		t.Errorf("bird -p accepted a broken config: %s", out)
	}
	broken = strings.Replace(frr, "neighbor VIRTBGP4 timers 3 9", "neighbor VIRTBGP4 timerz 3 9", 1)
	if err := os.WriteFile(f, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, "vtysh", "--config_dir", dir, "--dryrun", "-f", f).CombinedOutput(); err == nil {
		t.Errorf("vtysh --dryrun accepted a broken config: %s", out)
	}
}
