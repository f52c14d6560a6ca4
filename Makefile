# virtbgp: `make run` for the demo, `make test` for every test.
GO      ?= go
BIN     := bin/virtbgp
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 10s

.PHONY: all deps build run check test unit vet fuzz clean

all: build

deps:
	@scripts/deps.sh

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

# Every test: unit, real libvirt, real BGP, end to end; with the race detector.
test: vet
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory fuzz

# A short run of each fuzz target on top of its seed corpus.
fuzz: deps
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./mapping/
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./internal/config/

clean:
	rm -rf bin
