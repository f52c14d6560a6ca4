// Command vb-subreaper runs a command as a child subreaper: every orphaned
// descendant of the command (QEMU, which libvirtd double-forks) is
// re-parented to vb-subreaper, which reaps it at once.
//
//	vb-subreaper -- COMMAND [ARG...]
//
// Without it, orphans go to PID 1, which on machines without a real init
// reaps only every second or so; libvirt counts a zombie QEMU as alive, so
// every guest stop would look ~1.5 s slow.
//
// SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to the
// command. vb-subreaper stays while any descendant lives, so QEMU processes
// that outlive a stopped libvirtd are still reaped promptly, and exits with
// the command's status once no child is left; a SIGTERM or SIGINT that
// arrives after the command has exited makes it exit at once.
//
// Unlike tini, it does not exit when the command exits while descendants
// remain: the lab restarts libvirtd while guests keep running.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

const prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER, linux/prctl.h

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: vb-subreaper -- COMMAND [ARG...]")
		os.Exit(2)
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		fmt.Fprintf(os.Stderr, "vb-subreaper: prctl(PR_SET_CHILD_SUBREAPER): %v\n", errno)
		os.Exit(1)
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "vb-subreaper: %v\n", err)
		os.Exit(127)
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	// os.StartProcess, not exec.Cmd: the reap loop below waits for any child,
	// which would steal exec.Cmd's own Wait.
	proc, err := os.StartProcess(path, args, &os.ProcAttr{Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "vb-subreaper: start %s: %v\n", args[0], err)
		os.Exit(127)
	}
	child := proc.Pid

	type exit struct {
		pid    int
		status syscall.WaitStatus
	}
	exits := make(chan exit, 16)
	noChildren := make(chan struct{})
	go func() {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, 0, nil)
			switch {
			case err == syscall.EINTR:
				continue
			case err != nil: // ECHILD: nothing left to reap
				close(noChildren)
				return
			}
			exits <- exit{pid, ws}
		}
	}()

	code, mainDone := 0, false
	for {
		select {
		case s := <-sigs:
			if mainDone {
				if s == syscall.SIGTERM || s == syscall.SIGINT {
					os.Exit(code)
				}
				continue
			}
			_ = syscall.Kill(child, s.(syscall.Signal))
		case e := <-exits:
			if e.pid != child {
				continue
			}
			mainDone = true
			switch {
			case e.status.Exited():
				code = e.status.ExitStatus()
			case e.status.Signaled():
				code = 128 + int(e.status.Signal())
			}
		case <-noChildren:
			// Drain exits that raced with ECHILD.
			for {
				select {
				case e := <-exits:
					if e.pid == child {
						if e.status.Exited() {
							code = e.status.ExitStatus()
						} else if e.status.Signaled() {
							code = 128 + int(e.status.Signal())
						}
					}
				default:
					os.Exit(code)
				}
			}
		}
	}
}
