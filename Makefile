# shortener: a bare `make` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/shortener
FUZZTIME ?= 15s
export PATH := $(PATH):/usr/local/go/bin

.DEFAULT_GOAL := help
.PHONY: help build run status test test-race test-regions fuzz bench clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/shortener
	@$(GO) build -o $(BIN) ./cmd/shortener

run: build ## run the dev cluster: us-east, eu-west, ap-south on 127.0.N.1:8080, state in var/dev; Ctrl-C stops it
	@./$(BIN) dev $(DEVFLAGS)

status: build ## every region's view of every other: lag, mirror state, RPO bound, alias register
	@./$(BIN) status

test: ## the test suite: real NATS, Pebble, HTTP and child processes (about a minute)
	$(GO) test -count=1 -timeout 15m ./...

test-race: ## the fast packages again under the race detector
	$(GO) test -count=1 -race -timeout 15m ./events/... ./projections/... ./chaos/... ./region/...

test-regions: ## three regions as child processes: replication, alias races, kills, RPO (a few minutes)
	$(GO) test -count=1 -tags regions -timeout 20m -run 'TestCluster' ./cmd/shortener/

fuzz: ## run every fuzz target for FUZZTIME each (default 15s)
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test $$pkg -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) 2>&1 | tail -n 3; \
	  done; \
	done

bench: build ## redirect benchmark against a bare net/http 301, side by side, with Go's GC defaults as a variant (docs/benchmarks.md)
	@if command -v taskset >/dev/null; then taskset -c 1 ./$(BIN) bench redirect --variant go-gc-defaults=GOGC=100 $(BENCHFLAGS); else ./$(BIN) bench redirect --variant go-gc-defaults=GOGC=100 $(BENCHFLAGS); fi

clean: ## remove bin/ and var/ (all dev state)
	rm -rf bin var
