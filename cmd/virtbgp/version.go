package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// releaseVersion is the version of this tree: the top entry of
// CHANGELOG.md, and the Debian package's upstream version (make deb).
const releaseVersion = "0.1.0"

// Set at build time by the Makefile: -ldflags "-X main.version=... -X
// main.commit=...". Without them, version is releaseVersion and commit the
// revision the Go tool stamped into the binary, if any.
var (
	version = ""
	commit  = ""
)

// buildVersion is what virtbgp says about its build.
type buildVersion struct {
	Version   string // release version, or what -X main.version set
	Commit    string // VCS revision (12 hex digits, "-dirty" if modified), or "unknown"
	GoVersion string // runtime.Version()
}

// currentBuild returns this binary's version, commit and Go version.
func currentBuild() buildVersion {
	b := buildVersion{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if b.Version == "" {
		b.Version = releaseVersion
	}
	if b.Commit == "" {
		b.Commit = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			rev, dirty := "", false
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					dirty = s.Value == "true"
				}
			}
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if rev != "" {
				b.Commit = rev
				if dirty {
					b.Commit += "-dirty"
				}
			}
		}
	}
	return b
}

// versionString is `virtbgp version`'s line.
func versionString() string {
	b := currentBuild()
	return fmt.Sprintf("virtbgp %s (commit %s, %s %s/%s)", b.Version, b.Commit, b.GoVersion, runtime.GOOS, runtime.GOARCH)
}
