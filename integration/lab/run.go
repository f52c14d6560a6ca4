package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// CommandError is the error of a command that failed: what was run, how it
// ended, and what it wrote to stderr (or to stdout, for tools such as birdc
// and vtysh that report errors there).
type CommandError struct {
	Args   []string
	Err    error // the exec error or *exec.ExitError
	Stderr string
}

func (e *CommandError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		return fmt.Sprintf("%s: %v", strings.Join(e.Args, " "), e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", strings.Join(e.Args, " "), e.Err, msg)
}

func (e *CommandError) Unwrap() error { return e.Err }

// run runs a command to completion and returns its stdout. On failure the
// error is a *CommandError with the command's stderr.
func run(ctx context.Context, argv ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		msg := stderr.String()
		if msg == "" {
			msg = stdout.String()
		}
		return stdout.String(), &CommandError{Args: argv, Err: err, Stderr: msg}
	}
	return stdout.String(), nil
}

// Eventually calls cond every interval until it returns nil, and returns
// nil; or, once ctx is done, the last error of cond wrapped with the
// context's error. cond is called at once, then after each interval. An
// error of cond marked with [Permanent] ends it at once.
func Eventually(ctx context.Context, interval time.Duration, cond func(context.Context) error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		var p *permanentError
		if errors.As(err, &p) {
			return p.err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Permanent marks an error of an [Eventually] condition as final: waiting
// longer will not help (the daemon it waits for has exited).
func Permanent(err error) error { return &permanentError{err} }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// WaitRIBs polls each ToR's RIB every interval until check accepts it
// (check may return a Permanent error to stop at once). On failure the error
// names the router and shows its last RIB.
func (l *Lab) WaitRIBs(ctx context.Context, interval time.Duration, check func(r Router, rib RIB) error) error {
	for _, r := range l.Routers() {
		var last RIB
		err := Eventually(ctx, interval, func(ctx context.Context) error {
			rib, err := r.Routes(ctx)
			if err != nil {
				return err
			}
			last = rib
			return check(r, rib)
		})
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", r.Name(), err, last)
		}
	}
	return nil
}
