package bgp

// Hooks for the external tests (package bgp_test). Those live outside the
// package because they use internal/bgptest, which imports this package.
var (
	// BuildPath is buildPath.
	BuildPath = buildPath
	// ProbeTCPMD5 is probeTCPMD5.
	ProbeTCPMD5 = probeTCPMD5
)
