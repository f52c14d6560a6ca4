//go:build !linux

package bgp

// probeTCPMD5 is a no-op where the probe is not implemented.
func probeTCPMD5(listener bool) error { return nil }
