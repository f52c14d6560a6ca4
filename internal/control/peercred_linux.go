//go:build linux

package control

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerCred returns the credentials of the process at the other end of c, as
// the kernel recorded them when it connected (SO_PEERCRED).
func peerCred(c *net.UnixConn) (cred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return cred{}, fmt.Errorf("peer credentials: %w", err)
	}
	var (
		uc   *unix.Ucred
		uerr error
	)
	if err := raw.Control(func(fd uintptr) {
		uc, uerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return cred{}, fmt.Errorf("peer credentials: %w", err)
	}
	if uerr != nil {
		return cred{}, fmt.Errorf("peer credentials: SO_PEERCRED: %w", uerr)
	}
	return cred{pid: uc.Pid, uid: uc.Uid, gid: uc.Gid}, nil
}
