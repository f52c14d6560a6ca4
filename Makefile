# virtbgp: `make run` for the demo, `make test` for every test.
GO      ?= go
BIN     := bin/virtbgp
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X main.version=$(VERSION)
# Fuzz budget per target as a count of executions, not a duration: in
# Go 1.26 a duration budget can fail a target with a bare "context
# deadline exceeded" when a worker is busy at the deadline (golang/go#75804,
# fixed in Go 1.27). 60000 executions is 3-25 s per target on 2 cores.
FUZZTIME ?= 60000x
# staticcheck, pinned (the Go proxy here serves pinned versions only).
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all deps build run check test unit vet lint fuzz clean

all: build

# Every test needs the lab's packages too (real libvirtd + QEMU, BIRD, FRR).
deps:
	@scripts/deps.sh $(LAB_PKGS)

build: deps
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/virtbgp

# The demo: libvirt's in-process test driver (its domain "test" is running)
# and the example mapping; watch the log announce the test domain's IPs.
run: build
	$(BIN) check --config examples/virtbgp.yaml
	$(BIN) run --config examples/virtbgp.yaml

check: build
	$(BIN) check --config examples/virtbgp.yaml

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
