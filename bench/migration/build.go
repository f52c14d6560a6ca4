package migration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/virtbgp/virtbgp/bench"
)

// buildBefore builds virtbgp at git revision rev from a temporary git
// worktree (removed again) into dir, and returns a wrapper to run it in
// the lab, and the revision's short hash.
//
// The lab writes the config keys state-dir and control.socket, which
// virtbgp learned after the make-before-break change; an older virtbgp's
// strict config loader refuses them. The wrapper drops those two keys from
// the config it is given (they only place files; they change nothing of
// the routing) and execs the old binary, so the lab's PID is virtbgp's.
func buildBefore(ctx context.Context, env *bench.Env, rev, dir string) (wrapper, short string, err error) {
	out, err := git(ctx, env.Root, "rev-parse", "--short", rev+"^{commit}")
	if err != nil {
		return "", "", err
	}
	short = strings.TrimSpace(out)
	wt := filepath.Join(dir, "worktree-"+short)
	if _, err := git(ctx, env.Root, "worktree", "add", "--detach", wt, short); err != nil {
		return "", "", err
	}
	defer func() {
		if _, rerr := git(context.WithoutCancel(ctx), env.Root, "worktree", "remove", "--force", wt); rerr != nil {
			env.Log.Warn("remove the worktree", "dir", wt, "err", rerr)
		}
	}()
	bin := filepath.Join(dir, "virtbgp-"+short)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/virtbgp")
	cmd.Dir = wt
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build virtbgp at %s: %v: %s", short, err, b)
	}
	env.Log.Info("built the before binary", "rev", short, "bin", bin)
	wrapper = filepath.Join(dir, "virtbgp-"+short+"-lab")
	script := `#!/bin/bash
# virtbgp ` + short + ` for the lab: drop the config keys it does not know
# (state-dir, control), then exec it.
args=()
while [ $# -gt 0 ]; do
	if [ "$1" = --config ] && [ $# -gt 1 ]; then
		compat="${2%.yaml}.` + short + `.yaml"
		awk '/^state-dir:/ {next} /^control:/ {skip=1; next} skip && /^[ \t]/ {next} {skip=0; print}' "$2" >"$compat" || exit 1
		args+=(--config "$compat")
		shift 2
		continue
	fi
	args+=("$1")
	shift
done
exec ` + bin + ` "${args[@]}"
`
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		return "", "", err
	}
	return wrapper, short, nil
}

func git(ctx context.Context, root string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = root
	b, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, b)
	}
	return string(b), nil
}

// gitDescribe names the working tree: its commit, "-dirty" with changes.
func gitDescribe(root string) string {
	out, err := git(context.Background(), root, "describe", "--always", "--dirty")
	if err != nil {
		return "working tree"
	}
	return "working tree " + strings.TrimSpace(out)
}
