# orderpipe: `make run` starts the whole pipeline locally, `make test` runs every test.
# Needs Go, and Postgres and Redis on 127.0.0.1 (scripts/local-services starts them; make run
# starts private ones itself when nothing answers; see README); make test and BROKER=kafka also
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
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Packages whose code runs goroutines (consumer loops, intake batching, Redis pipelining, the HTTP
# server, stock sync, refreshers, the payment client's breaker and limiter, the broker control,
# reconciliation): make test runs their tests once more under the race detector. Of the packages
# that run the whole pipeline in the test process (order-worker, notifier, reaper), the race run
# takes the tests with tens of orders (RACE_PIPELINE_TESTS): under -race the thousand-order tests
# ran 5-10x slower and missed their 90 s deadlines on 2 CPUs (33 min for the lot, no race found).
# Measured on 2026-12-07 (2 CPUs, load average ~25 from other work): make test-race 4 min 24 s,
# compilation with -race included; every package passed, no race reported.
RACE_PKGS := ./internal/consumer/ ./internal/intake/ ./internal/redisstore/ ./internal/httpapi/ \
	./internal/inventorysync/ ./internal/refresh/ ./internal/payment/ ./internal/kafka/ \
	./internal/reconcile/
RACE_PIPELINE_PKGS := ./internal/orderworker/ ./internal/notifier/ ./internal/reaper/
RACE_PIPELINE_TESTS := ^(TestGatewayOutageRetriesAndBreakerRecovers|TestPoisonRecordIsDeadLetteredAndThePartitionFlows|TestExpiredHoldsAreDecidedByTheGuard|TestSMTPOutageThenEveryEmailArrivesOnce|TestSkipsOtherEventsAndDeadLettersPoison|TestDailySummaryOncePerDay|TestTwoReapersReturnEveryUnitOnce|TestExpiryEventsSurviveABrokerOutage|TestRunReapsHoldsAsTheyExpire)$$

.PHONY: all build run test test-race test-short fuzz bench bench-e2e chaos vet lint clean

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
## java, mvn or jar fails the run instead of skipping the tier (ORDERPIPE_REAL_KAFKA=off skips it);
## then the packages with concurrency again under the race detector.
ORDERPIPE_REAL_KAFKA ?= required
test:
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) ORDERPIPE_REAL_KAFKA=$(ORDERPIPE_REAL_KAFKA) $(GO) test $(TEST_FLAGS) ./...
	$(MAKE) --no-print-directory test-race

## test-race: the packages with concurrency under -race (RACE_PKGS whole, RACE_PIPELINE_PKGS
## tests with few orders).
test-race:
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) ORDERPIPE_REAL_KAFKA=$(ORDERPIPE_REAL_KAFKA) $(GO) test -race $(TEST_FLAGS) $(RACE_PKGS)
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) $(GO) test -race $(TEST_FLAGS) -run '$(RACE_PIPELINE_TESTS)' $(RACE_PIPELINE_PKGS)

vet:
	$(GO) vet ./...

## fuzz: every fuzz target of the input gate for FUZZTIME each (make test runs their seeds).
## A crasher lands in the package's testdata/fuzz/<target>/: keep it, it is a seed from then on.
FUZZTIME ?= 1m
FUZZ_TARGETS := \
	./internal/input:FuzzJSON ./internal/input:FuzzHasCardNumber \
	./internal/httpapi:FuzzPlaceOrderBody ./internal/httpapi:FuzzPutProductBody \
	./internal/httpapi:FuzzCreatePromotionBody ./internal/httpapi:FuzzPutTradeAccount \
	./internal/httpapi:FuzzWarehouseStockBody ./internal/httpapi:FuzzProductsCursor \
	./internal/httpapi:FuzzIdempotencyKey \
	./internal/event:FuzzOrderPlacedRecord ./internal/event:FuzzOutcomeRecord ./internal/event:FuzzStockRecord
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

## lint: go vet and staticcheck (pinned; configured in staticcheck.conf).
lint: vet
	$(GO) run $(STATICCHECK) ./...

## bench: micro-benchmarks, then the intake (open-model load), order-worker, ops toolkit and
## promotion benchmarks, which write their sections of docs/benchmarks.md (every section between
## markers there is written by a command; chaos and e2e by make chaos/bench-e2e with --out).
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/redisstore/ ./internal/event/ ./internal/inventorysync/
	$(BIN)/orderctl bench intake --out docs/benchmarks.md
	$(BIN)/orderctl bench worker --out docs/benchmarks.md
	$(BIN)/orderctl bench ops --out docs/benchmarks.md
	$(BIN)/orderctl bench promo --duration 5s --rounds 5 --workers 64 --out docs/benchmarks.md

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
