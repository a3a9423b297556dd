# shortener: a bare `make` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/shortener
FUZZTIME ?= 15s
STATICCHECK := v0.8.2
export PATH := $(PATH):/usr/local/go/bin

.DEFAULT_GOAL := help
.PHONY: help build run status chaos region-down region-stop region-up region-drain region-undrain audit drills drill drills-fresh backup restore compose-image compose-up compose-down compose-region-down compose-region-up test-compose rules test-obs screenshot test test-race tools lint test-regions test-hosts verify-units fuzz bench clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/shortener
	@$(GO) build $(if $(wildcard .git),-buildvcs=true) -o $(BIN) ./cmd/shortener

run: build ## run the dev cluster: us-east, eu-west, ap-south on 127.0.N.1:8080, state in var/dev; Ctrl-C stops it
	@./$(BIN) dev $(DEVFLAGS)

status: build ## the switch's answers, and every region's view of every other: lag, mirror state, RPO bound, alias register
	@./$(BIN) status

audit: build ## verify the running dev cluster: every mirror against its origin (range digests), every projection against a replay of the log
	@./$(BIN) audit verify

chaos: build ## a seeded chaos run on a fresh cluster of its own: faults under load, then the checkers; make chaos SEED=42 DURATION=4m (report in var/chaos/seed-N)
	./$(BIN) chaos $(if $(SEED),--seed $(SEED)) --duration $(or $(DURATION),4m) $(CHAOSFLAGS)

region-down: build ## SIGKILL a region of the running cluster (a crash): make region-down REGION=us-east
	@test -n "$(REGION)" || { echo "make region-down: give REGION=us-east|eu-west|ap-south" >&2; exit 2; }
	@./$(BIN) dev down $(REGION)

region-stop: build ## stop a region gracefully (SIGTERM: drain in-flight requests, close): make region-stop REGION=us-east
	@test -n "$(REGION)" || { echo "make region-stop: give REGION=us-east|eu-west|ap-south" >&2; exit 2; }
	@./$(BIN) dev stop $(REGION)

region-up: build ## start a killed region again on its state, wait until it is caught up and answered again: make region-up REGION=us-east
	@test -n "$(REGION)" || { echo "make region-up: give REGION=us-east|eu-west|ap-south" >&2; exit 2; }
	@./$(BIN) dev up $(REGION)

region-drain: build ## send nobody to a region, whatever its health: make region-drain REGION=eu-west
	@test -n "$(REGION)" || { echo "make region-drain: give REGION=us-east|eu-west|ap-south" >&2; exit 2; }
	@./$(BIN) switch drain $(REGION)

region-undrain: build ## answer a drained region again once healthy: make region-undrain REGION=eu-west
	@test -n "$(REGION)" || { echo "make region-undrain: give REGION=us-east|eu-west|ap-south" >&2; exit 2; }
	@./$(BIN) switch undrain $(REGION)

test: ## the test suite: real NATS, Pebble, HTTP and child processes (about a minute)
	$(GO) test -count=1 -timeout 15m ./...

test-race: ## every package's untagged tests again under the race detector (the regions, compose and namespace tiers run without it)
	$(GO) test -count=1 -race -timeout 30m ./...

tools: ## install staticcheck at its pinned version (through the Go module proxy) for make lint
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK)

lint: ## go vet under every build tag, go mod tidy leaves no diff, staticcheck clean (make tools installs it)
	$(GO) vet ./...
	$(GO) vet -tags regions,compose,hosts ./...
	@$(GO) mod tidy -diff || { echo "make lint: go mod tidy would change go.mod/go.sum (the diff above): run go mod tidy" >&2; exit 1; }
	@sc=$$(command -v staticcheck || echo "$$($(GO) env GOPATH)/bin/staticcheck"); test -x "$$sc" || { echo "make lint: no staticcheck (make tools)" >&2; exit 1; }; \
	echo "staticcheck -tags regions,compose,hosts ./..."; "$$sc" -tags regions,compose,hosts ./...

test-regions: ## three regions as child processes: replication, alias races, kills, RPO (a few minutes)
	$(GO) test -count=1 -tags regions -timeout 20m -run 'TestCluster' ./cmd/shortener/

test-hosts: ## docs/deploy.md run: three regions in three network namespaces on a bridge, from the page's configs, a partition and its heal (root; ~1 min; CI runs it)
	$(GO) test -tags hosts -count=1 -timeout 6m -run TestDeployOnThreeHosts ./deploy/

verify-units: build ## systemd-analyze verify of deploy/systemd, the binary installed where the units name it (/usr/local/bin; root; CI runs it)
	install -m 0755 $(BIN) /usr/local/bin/shortener
	cd deploy/systemd && systemd-analyze verify shortener-region@us-east.service shortener-switch.service

fuzz: ## run every fuzz target for FUZZTIME each (default 15s)
	@set -eo pipefail; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    out=$$($(GO) test $$pkg -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s 2>&1) && rc=0 || rc=$$?; \
	    echo "$$out" | tail -n 3; \
	    if [ $$rc -ne 0 ]; then \
	      if echo "$$out" | grep -q '^    context deadline exceeded$$' && ! echo "$$out" | grep -q 'Failing input written'; then \
	        echo "  (Go's fuzzer stopped at the deadline while minimizing a new input: no failing input, not a failure)"; \
	      else echo "$$out"; exit $$rc; fi; \
	    fi; \
	  done; \
	done

bench: build ## redirect benchmark, one server at a time on CPU 0: bare net/http 301, the default region, clicks off; exits 1 while a target of issue 22 is missed; appends to docs/bench-results/redirect.jsonl (docs/benchmarks.md)
	@if command -v taskset >/dev/null; then taskset -c 1 ./$(BIN) bench redirect $(BENCHFLAGS); else ./$(BIN) bench redirect $(BENCHFLAGS); fi

drills: build ## DR drills against the running dev cluster (make run): failover and failback, cache flush and refill, backup and restore; report in var/drills/dr-report.{md,json}
	./$(BIN) drills --dir var/dev --report-dir var/drills

drills-fresh: build ## the DR drills on a fresh dev cluster of their own (127.5.N.1, var/drills-dev), stopped afterwards; prints the DR report (what CI runs)
	@set -euo pipefail; rm -rf var/drills-dev; mkdir -p var/drills-dev var/drills; \
	./$(BIN) dev --dir var/drills-dev --net 127.5 > var/drills-dev.log 2>&1 & dev=$$!; \
	trap 'kill -INT $$dev 2>/dev/null; wait $$dev 2>/dev/null || true' EXIT; \
	for i in $$(seq 1 180); do grep -q 'Ctrl-C stops' var/drills-dev.log && break; kill -0 $$dev 2>/dev/null || { cat var/drills-dev.log; exit 1; }; sleep 1; done; \
	grep -q 'Ctrl-C stops' var/drills-dev.log || { echo "drills-fresh: the dev cluster did not start in 3 min" >&2; cat var/drills-dev.log; exit 1; }; \
	./$(BIN) drills --dir var/drills-dev --report-dir var/drills $(DRILLFLAGS)

drill: build ## one DR drill: make drill NAME=failover|cache|backup|restart
	@test -n "$(NAME)" || { echo "make drill: give NAME=failover|cache|backup|restart" >&2; exit 2; }
	./$(BIN) drills --dir var/dev --report-dir var/drills --drill $(NAME)

backup: build ## back up the running dev cluster (every origin stream, every projection) into var/backups/<time>
	./$(BIN) backup --dir var/dev --out var/backups

restore: build ## restore a backup into a fresh staging region and check it against the live cluster: make restore BACKUP=var/backups/<id> (default the newest)
	@b="$(BACKUP)"; if [ -z "$$b" ]; then b=$$(ls -d var/backups/2*[0-9Z] 2>/dev/null | tail -n 1); fi; 	test -n "$$b" || { echo "make restore: no backup in var/backups (make backup) and no BACKUP=" >&2; exit 2; }; 	./$(BIN) restore "$$b" --dir var/dev

# docker compose (v2) where the docker CLI has it, else docker-compose (v1:
# what this project's machines and CI have, and the only one tested here).
COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose) -p shortener -f compose/docker-compose.yml
COMPOSE_KEY = SHORTENER_API_KEY=$${SHORTENER_API_KEY:-$$(cat var/compose/api-key 2>/dev/null || echo unset)} SHORTENER_SECRETS_DIR=$${SHORTENER_SECRETS_DIR:-$(CURDIR)/var/compose/secrets}

compose-image: ## build the static binary and the FROM scratch image of the compose stack
	CGO_ENABLED=0 $(GO) build -o compose/shortener ./cmd/shortener
	mkdir -p compose/data
	docker build -q -t shortener:compose compose/

compose-up: compose-image ## the three regions (+ us-east-b) and the switch on Docker, a network per region and a backbone: 127.0.0.1:18081-18084, switch admin 18054, DNS 18053
	@test -s var/compose/api-key || { mkdir -p var/compose && echo "sk_compose_$$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')" > var/compose/api-key; }
	@test -s var/compose/secrets/users.json || compose/shortener secrets init --dir var/compose/secrets --region us-east --region eu-west --region ap-south
	@test -s var/compose/secrets/http.crt || compose/shortener secrets http-cert --dir var/compose/secrets --host 127.0.0.1 --host 172.28.1.1 --host 172.28.2.1 --host 172.28.3.1 --host 172.30.1.11
	@for r in us-east eu-west ap-south; do test -s var/compose/secrets/$$r/users.json || compose/shortener secrets export --dir var/compose/secrets --out var/compose/secrets/$$r $$r; done
	@$$([ "$$(id -u)" = 0 ] || echo sudo) chown -R 65532:65532 var/compose/secrets/us-east var/compose/secrets/eu-west var/compose/secrets/ap-south # the containers' user reads them (mode 0600)
	$(COMPOSE_KEY) $(COMPOSE) up -d
	@echo "API key: $$(cat var/compose/api-key) (var/compose/api-key)"

compose-down: ## stop and remove the compose stack (its stores stay on their volumes; add -v by hand to wipe them)
	$(COMPOSE_KEY) $(COMPOSE) down --remove-orphans

compose-region-down: ## kill a region's containers (a crash): make compose-region-down REGION=us-east
	@test -n "$(REGION)" || { echo "make compose-region-down: give REGION=us-east|eu-west|ap-south" >&2; exit 2; }
	$(COMPOSE_KEY) $(COMPOSE) kill $$($(COMPOSE_KEY) $(COMPOSE) config --services | grep -E '^$(REGION)(-[a-z])?$$')

compose-region-up: ## start a killed region's containers again on their volumes: make compose-region-up REGION=us-east
	@test -n "$(REGION)" || { echo "make compose-region-up: give REGION=us-east|eu-west|ap-south" >&2; exit 2; }
	$(COMPOSE_KEY) $(COMPOSE) start $$($(COMPOSE_KEY) $(COMPOSE) config --services | grep -E '^$(REGION)(-[a-z])?$$')

test-compose: ## the end-to-end test of the compose stack on Docker (~2.5 min; CI runs it)
	$(GO) test -tags compose -count=1 -timeout 6m ./compose/

rules: ## promtool check and unit tests of the Prometheus rules (deploy/prometheus)
	cd deploy/prometheus && promtool check rules shortener.rules.yml && promtool check config prometheus.yml && promtool test rules shortener.rules.test.yml shortener.rules.slow.test.yml

test-obs: ## observability: rules, runbook commands, /metrics and the status page (headless Chromium) against three regions
	$(GO) test -count=1 ./deploy/
	$(GO) test -count=1 -run 'TestRunbook' ./cmd/shortener/
	$(GO) test -count=1 -tags regions -timeout 10m -run 'TestClusterObservability' ./cmd/shortener/

screenshot: ## the picture of /status in docs/observability.md (docs/status.png), taken in headless Chromium
	STATUS_SCREENSHOT=$(CURDIR)/docs/status.png $(GO) test -count=1 -tags regions -timeout 10m -run 'TestClusterObservability' ./cmd/shortener/

clean: ## remove bin/ and var/ (all dev state)
	rm -rf bin var
