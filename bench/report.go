package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ResultsDir is where each suite's section is kept, relative to the module
// root: results/<suite>.md.
const ResultsDir = "bench/results"

// summaryMark starts a summary line of a section, kept as an HTML comment
// in its results file for the "At a glance" list of BENCHMARKS.md.
const summaryMark = "<!-- summary: "

// WriteSection writes a suite's section, with its heading and run line,
// to <root>/bench/results/<suite>.md.
func WriteSection(root string, s Suite, env *Env, sec *Section, took time.Duration) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "<!-- written by bench/cmd/virtbgp-bench, suite %s; do not edit: run the command below again -->\n", s.Name())
	for _, l := range sec.Summary {
		fmt.Fprintf(&b, "%s%s -->\n", summaryMark, strings.ReplaceAll(l, "--", "- -"))
	}
	fmt.Fprintf(&b, "## %s\n\n", s.Title())
	fmt.Fprintf(&b, "- **Run**: %s, took %s\n", env.Machine.Started.UTC().Format("2006-01-02 15:04 MST"), took.Round(time.Second))
	fmt.Fprintf(&b, "- **Machine**: %s\n", env.Machine)
	for _, n := range sec.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	fmt.Fprintf(&b, "- **Reproduce** (as root, from the module root): `%s -suite=%s`\n\n", env.Command, s.Name())
	b.WriteString(strings.TrimSpace(sec.Markdown))
	b.WriteString("\n")
	dir := filepath.Join(root, ResultsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, s.Name()+".md")
	return p, os.WriteFile(p, []byte(b.String()), 0o644)
}

// Assemble writes <root>/BENCHMARKS.md from every section in
// bench/results: the registered suites' in their order, then any other
// file there by name.
func Assemble(root string) (string, error) {
	dir := filepath.Join(root, ResultsDir)
	files, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		return "", err
	}
	var order []string
	for _, n := range Names() {
		p := filepath.Join(dir, n+".md")
		if slices.Contains(files, p) {
			order = append(order, p)
		}
	}
	for _, f := range files {
		if !slices.Contains(order, f) {
			order = append(order, f)
		}
	}
	var b strings.Builder
	b.WriteString(`# virtbgp benchmarks

Figures measured by ` + "`make bench`" + ` (bench/cmd/virtbgp-bench). Each section
below is one suite's latest run, kept in ` + "`bench/results/<suite>.md`" + ` and
assembled into this file; each says when and on what machine it was
measured, the load around it, and the exact command that reproduces it.
Benchmarks report figures; they do not fail on a threshold. Where both
apply, virtbgp is measured beside the pattern it replaces: ExaBGP 4.2
(Debian) fed ` + "`announce route P next-hop self med M community [..]`" + ` lines
through its process API, on the same BIRD session with the same prefixes
and attributes, one after the other in the same run (bench/rig).

- Every suite: ` + "`make bench`" + `
- One suite: ` + "`make bench BENCH_SUITES=<suite>`" + ` (suites: ` + strings.Join(Names(), ", ") + `); the other
  sections stay as they are.
- Options of a suite: ` + "`go run ./bench/cmd/virtbgp-bench -h`" + `

`)
	if len(order) == 0 {
		b.WriteString("No suite has been run yet.\n")
	}
	var sections [][]byte
	glance := false
	for _, f := range order {
		c, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		sections = append(sections, c)
		for _, l := range strings.Split(string(c), "\n") {
			if line, ok := strings.CutPrefix(l, summaryMark); ok {
				if !glance {
					b.WriteString("## At a glance\n\n")
					glance = true
				}
				fmt.Fprintf(&b, "- %s\n", strings.TrimSuffix(line, " -->"))
			}
		}
	}
	for _, c := range sections {
		b.WriteString("\n")
		b.Write(c)
	}
	p := filepath.Join(root, "BENCHMARKS.md")
	return p, os.WriteFile(p, []byte(b.String()), 0o644)
}
