//go:build linux

package bgp

import (
	"context"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// probeTCPMD5 reports whether a TCP MD5 signature (RFC 2385, the BGP
// password) can be set on the kind of socket GoBGP uses: an outgoing one
// (a plain TCP socket, as net.Dialer makes by default) or, with listener, a
// listening socket made by net.ListenConfig. Without it GoBGP cannot apply
// the peer's password and the session never comes up; GoBGP only says so in
// a debug message (outgoing) or a warning when the peer is added
// (listener).
func probeTCPMD5(listener bool) error {
	sig := unix.TCPMD5Sig{Keylen: 4}
	sig.Addr.Family = unix.AF_INET
	copy(sig.Addr.Data[2:], []byte{127, 0, 0, 1})
	copy(sig.Key[:], "test")
	set := func(fd int) error {
		if err := unix.SetsockoptTCPMD5Sig(fd, unix.IPPROTO_TCP, unix.TCP_MD5SIG, &sig); err != nil {
			return fmt.Errorf("set TCP_MD5SIG: %w", err)
		}
		return nil
	}

	if !listener {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open a socket: %w", err)
		}
		defer unix.Close(fd)
		return set(fd)
	}

	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("open a listening socket: %w", err)
	}
	defer l.Close()
	sc, err := l.(syscall.Conn).SyscallConn()
	if err != nil {
		return fmt.Errorf("listening socket: %w", err)
	}
	var setErr error
	if err := sc.Control(func(fd uintptr) { setErr = set(int(fd)) }); err != nil {
		return fmt.Errorf("listening socket: %w", err)
	}
	if setErr != nil && lc.MultipathTCP() {
		// Go listens with MPTCP by default since 1.24, and MPTCP sockets
		// have no TCP_MD5SIG (ENOPROTOOPT).
		return fmt.Errorf("%w (the listener is MPTCP, Go's default since 1.24: "+
			"run with GODEBUG=multipathtcp=0 or put //go:debug multipathtcp=0 in package main)", setErr)
	}
	return setErr
}
