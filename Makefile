# Arbiter: next-best-action decision server.
#   make run    serve the demo: gRPC on 127.0.0.1:50051, HTTP/JSON on 127.0.0.1:8080 (arbiter demo: embedded store, demo data)
#   make test   all tests (storage tests start their own redis-server)

GO       ?= go
RACE     ?=
TESTFLAGS ?=
BUF      := $(GO) tool -modfile=../tools/go.mod buf

.PHONY: run seed test vet fmt-check proto proto-check bench bench-go build ci fuzz faults faults-short

run:
	$(GO) run ./cmd/arbiter demo

seed:
	$(GO) run ./cmd/arbiter seed

build:
	$(GO) build -o bin/arbiter ./cmd/arbiter
	$(GO) build -o bin/arbiterctl ./cmd/arbiterctl

test:
	$(GO) test $(if $(RACE),-race) $(TESTFLAGS) ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Regenerate the protobuf code (buf and the plugins are pinned in tools/go.mod).
proto:
	cd proto && $(BUF) lint && $(BUF) generate

# Fail when the committed generated code differs from a fresh generation.
proto-check: proto
	@git diff --exit-code -- proto || (echo "generated code is stale: run 'make proto' and commit"; exit 1)

# Run every fuzz target for FUZZTIME (a count of inputs, not a duration:
# a duration can end in a spurious "context deadline exceeded" from Go's
# fuzz coordinator, golang/go#75804). New interesting inputs stay in the
# build cache; a failing one is written to the package's testdata/fuzz,
# where `make test` replays it from then on. A third field divides the
# count for a slow target (a definitions set compiles its rules).
FUZZTIME ?= 20000x
FUZZ_TARGETS := server:FuzzDecideRequest server:FuzzDecodeDecideRequest server:FuzzConsentRecord server:FuzzEvent server:FuzzImportItem \
	redisstore:FuzzConsentRecord redisstore:FuzzLedgerEntry redisstore:FuzzTouch definitions:FuzzDefinitions:10
fuzz:
	@set -e; log=$$(mktemp); trap 'rm -f $$log' EXIT; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; div=$${rest#$$name}; div=$${div#:}; \
		n=$$(( $${FUZZTIME%x} / $${div:-1} ))x; echo "fuzz ./$$pkg $$name ($$n)"; \
		$(GO) test ./$$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $$n -timeout 5m >$$log 2>&1 || { cat $$log; exit 1; }; \
		tail -1 $$log; done

# The fault suite (cmd/faults/): real redis-server, arbiter and a delaying proxy
# under load, through Redis and server kills, freezes and restarts, bad
# input and overload at 3x; see RELIABILITY.md. faults-short is what CI runs.
faults:
	$(GO) run ./cmd/faults -out bench/out/faults.md

faults-short:
	$(GO) run ./cmd/faults -short

# Micro benchmarks (scoring, decision, consent, the Redis store and cache; the stores
# start their own redis-server).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./scoring/ ./decision/ ./consent/ ./redisstore/ ./hcpcache/

# End to end, with their own redis-servers (bench/README.md; ~30 minutes):
# first the cost of a decision against an empty call (bench/cost.sh, the
# headline, with the campaign batches), then the throughput sweep
# (bench/run.sh); ends with the headline figures (bench/headline.sh).
bench:
	BENCH_BATCH=1 bench/cost.sh
	bench/run.sh
	@bench/headline.sh

ci: fmt-check vet proto-check
	$(MAKE) test RACE=1

# Check the deployment files offline (deploy/validate: alert rules, manifests, compose, Dockerfile).
.PHONY: deploy-check
deploy-check:
	cd deploy/validate && $(GO) test -count=1 ./...
