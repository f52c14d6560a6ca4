// Package systemd holds what a host install needs besides the binary: the
// unit virtbgp.service and the optional drop-in dedicated-user.conf (run as
// a user in the libvirt group instead of root). It has no code; its tests
// check both files with `systemd-analyze verify` (Debian package systemd;
// no running systemd needed), assert the directives virtbgp relies on, and
// bound the unit's `systemd-analyze security` exposure.
package systemd
