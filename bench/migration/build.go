package migration

import (
	"context"
	"os"
	"path/filepath"

	"github.com/virtbgp/virtbgp/bench"
)

// buildBefore builds virtbgp at git revision rev from a temporary git
// worktree (removed again) into dir, and returns a wrapper to run it in
// the lab, and the revision's short hash.
//
// The lab writes the config keys state-dir and control.socket, which
// virtbgp learned after the make-before-break change; an older virtbgp's
// strict config loader refuses them. The wrapper drops those two keys from
// the config it is given only when the old binary's `check` refuses the
// config as it is (they only place files; they change nothing of the
// routing; a revision that knows them must keep them, or both hosts'
// virtbgps would share the default control socket), and execs the old
// binary, so the lab's PID is virtbgp's.
func buildBefore(ctx context.Context, env *bench.Env, rev, dir string) (wrapper, short string, err error) {
	bin, short, err := bench.BuildVirtbgp(ctx, env, rev, dir)
	if err != nil {
		return "", "", err
	}
	wrapper = filepath.Join(dir, "virtbgp-"+short+"-lab")
	script := `#!/bin/bash
# virtbgp ` + short + ` for the lab: drop the config keys it does not know
# (state-dir, control) if it refuses them, then exec it.
args=()
while [ $# -gt 0 ]; do
	if [ "$1" = --config ] && [ $# -gt 1 ] && ! ` + bin + ` check --config "$2" >/dev/null 2>&1; then
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
