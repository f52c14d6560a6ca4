package main

import (
	"bytes"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestVersion: `virtbgp version` says the release version, the commit and
// the Go version; -X main.commit (the Makefile's) wins over the Go tool's
// stamp.
func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runMain([]string{"version"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := regexp.MustCompile(`^virtbgp ` + regexp.QuoteMeta(releaseVersion) + ` \(commit \S+, ` + regexp.QuoteMeta(runtime.Version()) + ` \S+/\S+\)\n$`)
	if !want.MatchString(out.String()) {
		t.Errorf("version printed %q, want it to match %s", out.String(), want)
	}
	defer func(c string) { commit = c }(commit)
	commit = "0123456789ab"
	if b := currentBuild(); b.Commit != "0123456789ab" || b.Version != releaseVersion || b.GoVersion != runtime.Version() {
		t.Errorf("currentBuild() = %+v", b)
	}
}

// TestChangelogHasRelease: CHANGELOG.md's top entry is this release, with
// upgrade notes.
func TestChangelogHasRelease(t *testing.T) {
	data, err := os.ReadFile("../../CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	top := regexp.MustCompile(`(?m)^## (\S+)`).FindStringSubmatch(string(data))
	if top == nil || top[1] != releaseVersion {
		t.Fatalf("CHANGELOG.md's top entry is %v, want ## %s", top, releaseVersion)
	}
	entry := string(data)[strings.Index(string(data), top[0]):]
	if next := strings.Index(entry[len(top[0]):], "\n## "); next >= 0 {
		entry = entry[:len(top[0])+next]
	}
	if !strings.Contains(entry, "### Upgrade notes") {
		t.Errorf("CHANGELOG.md's entry %s has no \"### Upgrade notes\"", releaseVersion)
	}
}
