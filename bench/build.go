package bench

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildVirtbgp builds virtbgp at git revision rev of env.Root, from a
// temporary git worktree (removed again), into dir; it returns the binary
// and the revision's short hash. A suite runs it beside the working tree's
// to show a change before and after in one run.
func BuildVirtbgp(ctx context.Context, env *Env, rev, dir string) (bin, short string, err error) {
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
			env.Log.Warn("remove the worktree", "dir", wt, "error", rerr)
		}
	}()
	bin = filepath.Join(dir, "virtbgp-"+short)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/virtbgp")
	cmd.Dir = wt
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build virtbgp at %s: %v: %s", short, err, b)
	}
	env.Log.Info("built virtbgp at an earlier revision", "rev", short, "bin", bin)
	return bin, short, nil
}

// Describe names the working tree: its commit, "-dirty" with changes
// outside the bench's own output (bench/results, BENCHMARKS.md), which a
// run writes as it goes.
func Describe(root string) string {
	out, err := git(context.Background(), root, "rev-parse", "--short", "HEAD")
	if err != nil {
		return "working tree"
	}
	d := "working tree " + strings.TrimSpace(out)
	st, err := git(context.Background(), root, "status", "--porcelain", "--", ".", ":(exclude)bench/results", ":(exclude)BENCHMARKS.md")
	if err != nil || strings.TrimSpace(st) != "" {
		d += "-dirty"
	}
	return d
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
