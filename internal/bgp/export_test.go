package bgp

import (
	"context"

	"github.com/osrg/gobgp/v3/pkg/server"
)

// Hooks for the external tests (package bgp_test). Those live outside the
// package because they use internal/bgptest, which imports this package.
var (
	// BuildPath is buildPath.
	BuildPath = buildPath
	// ProbeTCPMD5 is probeTCPMD5.
	ProbeTCPMD5 = probeTCPMD5
)

// GoBGPServer returns the speaker's GoBGP server, for tests that read its
// RIB and peers.
func GoBGPServer(s *Speaker) *server.BgpServer { return s.srv }

// CheckReceived is one round of the receive-limit watch (received.go).
func CheckReceived(s *Speaker, ctx context.Context) { s.checkReceived(ctx) }
