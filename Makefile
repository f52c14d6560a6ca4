# virtbgp: `make run` for the demo, `make test` for every test.
GO      ?= go
BIN     := bin/virtbgp
# The version is cmd/virtbgp's releaseVersion (CHANGELOG.md's top entry);
# the build records the commit it was made from.
COMMIT  ?= $(shell c=$$(git rev-parse --short=12 HEAD 2>/dev/null) && { git diff --quiet HEAD 2>/dev/null || c=$$c-dirty; echo $$c; } || echo unknown)
LDFLAGS := -X main.commit=$(COMMIT) $(EXTRA_LDFLAGS)
BUILDFLAGS ?=
# `make install` puts the files where the Debian package has them (the
# unit runs /usr/sbin/virtbgp); DESTDIR stages them (make deb).
DESTDIR ?=
# Fuzz budget per target as a count of executions, not a duration: in
# Go 1.26 a duration budget can fail a target with a bare "context
# deadline exceeded" when a worker is busy at the deadline (golang/go#75804,
# fixed in Go 1.27). 60000 executions is 3-25 s per target on 2 cores.
FUZZTIME ?= 60000x
# staticcheck, pinned (the Go proxy here serves pinned versions only).
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all deps build run check test unit vet lint fuzz clean install deb docs

all: build

# Every test needs the lab's packages too (real libvirtd + QEMU, BIRD, FRR).
deps:
	@scripts/deps.sh $(LAB_PKGS)

build: deps
	$(GO) build $(BUILDFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/virtbgp

# The files of a host install. The config and the mapping directory's
# example are installed only where none exists yet: an install from source
# over a configured host keeps the host's files.
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)/usr/sbin/virtbgp
	install -D -m 0644 systemd/virtbgp.service $(DESTDIR)/lib/systemd/system/virtbgp.service
	install -d -m 0755 $(DESTDIR)/etc/virtbgp/mapping.d
	[ -e $(DESTDIR)/etc/virtbgp/virtbgp.yaml ] || install -m 0644 examples/virtbgp.yaml $(DESTDIR)/etc/virtbgp/virtbgp.yaml
	[ -e $(DESTDIR)/etc/virtbgp/mapping.d/example.yaml ] || install -m 0644 examples/mapping.d/example.yaml $(DESTDIR)/etc/virtbgp/mapping.d/example.yaml
	install -d -m 0755 $(DESTDIR)/usr/share/man/man8 $(DESTDIR)/usr/share/man/man5
	gzip -9n <packaging/man/virtbgp.8 >$(DESTDIR)/usr/share/man/man8/virtbgp.8.gz
	gzip -9n <packaging/man/virtbgp-mapping.5 >$(DESTDIR)/usr/share/man/man5/virtbgp-mapping.5.gz
	install -D -m 0644 packaging/bash-completion/virtbgp $(DESTDIR)/usr/share/bash-completion/completions/virtbgp
	install -D -m 0644 -t $(DESTDIR)/usr/share/virtbgp/schema schema/config.schema.json schema/mapping.schema.json
	install -D -m 0644 -t $(DESTDIR)/usr/share/doc/virtbgp README.md docs/design.md docs/metadata.md
	gzip -9n <CHANGELOG.md >$(DESTDIR)/usr/share/doc/virtbgp/changelog.gz
	install -D -m 0644 -t $(DESTDIR)/usr/share/doc/virtbgp/examples examples/demo.yaml examples/mapping.yaml systemd/dedicated-user.conf
	install -D -m 0644 -t $(DESTDIR)/usr/share/doc/virtbgp/examples/prometheus examples/prometheus/virtbgp-alerts.yaml
	install -D -m 0644 -t $(DESTDIR)/usr/share/doc/virtbgp/examples/grafana examples/grafana/virtbgp-dashboard.json
	install -D -m 0644 -t $(DESTDIR)/usr/share/doc/virtbgp/tor docs/tor/README.md docs/tor/bird.conf docs/tor/frr.conf

# The Debian package, bin/virtbgp_<version>-1_<arch>.deb (scripts/mkdeb.sh).
deb: deps
	scripts/mkdeb.sh bin

# The generated man pages and bash completion (cmd/virtbgp/docs_test.go
# checks them in make test; this writes them anew).
docs:
	$(GO) test -count=1 -run '^TestGeneratedDocs$$' ./cmd/virtbgp/ -update

# The demo: libvirt's in-process test driver (its domain "test" is running)
# and the example mapping; watch the log announce the test domain's IPs.
run: build
	$(BIN) check --config examples/demo.yaml
	$(BIN) run --config examples/demo.yaml

check: build
	$(BIN) check --config examples/demo.yaml

vet: deps
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# staticcheck clean, and go.mod/go.sum exactly what `go mod tidy` writes.
lint: vet
	$(GO) run $(STATICCHECK) ./...
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

# Every test: unit, real libvirt, real BGP, the lab, end to end; with the race
# detector. One package at a time: the integration packages run whole labs and
# BGP sessions with real timers, which must not starve each other on 2 cores.
test: lint
	$(GO) test -race -count=1 -p 1 -timeout 30m ./...
	$(MAKE) --no-print-directory fuzz

# A short run of each fuzz target on top of its seed corpus.
fuzz: deps
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./mapping/
	$(GO) test -run='^$$' -fuzz='^FuzzParseMetadata$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./mapping/
	$(GO) test -run='^$$' -fuzz='^FuzzParseNova$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./mapping/
	$(GO) test -run='^$$' -fuzz='^FuzzParseHealth$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./mapping/
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./internal/config/
	$(GO) test -run='^$$' -fuzz='^FuzzHoldReload$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./internal/daemon/
	$(GO) test -run='^$$' -fuzz='^FuzzClip$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./fileerr/
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./internal/manual/
	$(GO) test -run='^$$' -fuzz='^FuzzRequest$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./internal/manual/
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./internal/control/
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./internal/maintenance/
	$(GO) test -run='^$$' -fuzz='^FuzzParseRequest$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./internal/maintenance/

clean:
	rm -rf bin

# ---- lab: the real-world lab for a person (integration/lab) ---------------
# Two hypervisor namespaces, each with its own libvirtd (real QEMU/KVM guests,
# live migration) and virtbgp, and BIRD and FRR as top-of-rack routers in a
# third. State, configs and logs live in $(LAB_DIR); the namespaces are named
# vblab-tor, vblab-hvA and vblab-hvB. `make lab` prints how to use it;
# `make lab-down` ends every process of it (by PID) and removes it.
LAB_PKGS := iproute2 libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 bird2 frr exabgp
LAB_DIR  ?= $(CURDIR)/.lab

.PHONY: lab lab-down lab-status lab-deps

lab-deps:
	@scripts/deps.sh $(LAB_PKGS)

lab: lab-deps
	$(GO) run ./integration/cmd/virtbgp-lab up --dir $(LAB_DIR)

lab-status:
	@$(GO) run ./integration/cmd/virtbgp-lab status --dir $(LAB_DIR)

lab-down:
	$(GO) run ./integration/cmd/virtbgp-lab down --dir $(LAB_DIR)

# ---- bench: benchmark suites (bench/, BENCHMARKS.md) ------------------------
# `make bench` runs every suite (as root: the lab suites need namespaces,
# libvirtd, BIRD and FRR), writes each suite's section to
# bench/results/<suite>.md, assembles BENCHMARKS.md from all sections and
# prints a summary. One suite: make bench BENCH_SUITES=migration (the other
# sections stay); a suite's options: BENCH_FLAGS='-migration.n=40' (list
# them with go run ./bench/cmd/virtbgp-bench -h).
BENCH_SUITES ?=
BENCH_FLAGS  ?=

.PHONY: bench

bench: lab-deps
	$(GO) run ./bench/cmd/virtbgp-bench $(if $(BENCH_SUITES),-suite=$(BENCH_SUITES)) $(BENCH_FLAGS)
