# orderpipe: `make run` starts the whole pipeline locally, `make test` runs every test.
# Needs Go, and Postgres and Redis on 127.0.0.1 (see README); make test and BROKER=kafka also
# need java (17+) and mvn.

GO        ?= go
BIN       := bin
BINARIES  := api order-worker inventory-sync notifier orderctl
DATA_DIR  ?= .data
# BROKER=kafka runs `make run` on one real Apache Kafka node (needs java and mvn; see README).
BROKER    ?= kfake
# More `orderctl dev` flags, e.g. DEV_FLAGS="--api-addr 127.0.0.1:18080 --broker-port 19092".
DEV_FLAGS ?=
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/orderpipe?sslmode=disable
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
TEST_FLAGS ?= -count=1 -timeout 12m

.PHONY: all build run test test-short bench bench-e2e chaos vet lint clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

## run: broker (kfake, or real Kafka with BROKER=kafka; data in $(DATA_DIR)), topics, migrations,
## demo data and keys, api.
run: build
	$(BIN)/orderctl dev --data-dir $(DATA_DIR) --broker $(BROKER) $(DEV_FLAGS)

## test: every test, against the real Postgres and Redis, an in-process broker (kfake) and, for
## the Kafka contract tests, one real Apache Kafka node per package: required here, so a missing
## java, mvn or jar fails the run instead of skipping the tier (ORDERPIPE_REAL_KAFKA=off skips it).
ORDERPIPE_REAL_KAFKA ?= required
test:
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) ORDERPIPE_REAL_KAFKA=$(ORDERPIPE_REAL_KAFKA) $(GO) test $(TEST_FLAGS) ./...

vet:
	$(GO) vet ./...

## bench: micro-benchmarks, then the intake (open-model load) and order-worker benchmarks,
## which write their sections of docs/benchmarks.md.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/redisstore/ ./internal/event/ ./internal/inventorysync/
	$(BIN)/orderctl bench intake --out docs/benchmarks.md
	$(BIN)/orderctl bench worker --out docs/benchmarks.md
	$(BIN)/orderctl bench ops --out docs/benchmarks.md

## bench-e2e: the standard flash sale through every real process in a private environment, then
## the issue's measurements (vs the naive design, accept-to-confirm, 2x overload, 5x burst);
## writes the e2e section of docs/benchmarks.md, docs/e2e-*.svg and docs/e2e-*.json.
bench-e2e: build
	$(BIN)/orderctl bench e2e --out docs/benchmarks.md

## chaos: every chaos scenario (scenarios/chaos-*.yaml) end to end; exits 1 if an invariant breaks.
chaos: build
	$(BIN)/orderctl chaos

clean:
	rm -rf $(BIN) $(DATA_DIR)
