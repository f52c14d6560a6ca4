//go:build race

package health

// raceEnabled: the race detector makes CPU measurements meaningless.
const raceEnabled = true
