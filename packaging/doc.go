// Package packaging holds what turns the tree into a Debian package besides
// the Makefile's install target: deb/ has the control template, the
// maintainer scripts, the conffiles, the copyright and the lintian
// overrides of scripts/mkdeb.sh (make deb); man/ and bash-completion/ hold
// the generated man pages and completion (cmd/virtbgp/docs_test.go). It has
// no code; its test builds the package, checks it with lintian, installs it
// on this machine with dpkg, validates the installed config and unit, and
// purges it.
package packaging
