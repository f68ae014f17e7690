# orderpipe: `make run` starts the whole pipeline locally, `make test` runs every test.
# Needs Go, and Postgres and Redis on 127.0.0.1 (see README).

GO        ?= go
BIN       := bin
BINARIES  := api order-worker inventory-sync notifier orderctl
DATA_DIR  ?= .data
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/orderpipe?sslmode=disable
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
TEST_FLAGS ?= -count=1 -timeout 12m

.PHONY: all build run test test-short fuzz bench bench-e2e chaos vet lint clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

## run: broker (kfake, data in $(DATA_DIR)), topics, migrations, demo data and keys, api.
run: build
	$(BIN)/orderctl dev --data-dir $(DATA_DIR)

## test: every test, against the real Postgres and Redis and an in-process broker.
test:
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) $(GO) test $(TEST_FLAGS) ./...

vet:
	$(GO) vet ./...

## fuzz: every fuzz target of the input gate for FUZZTIME each (make test runs their seeds).
## A crasher lands in the package's testdata/fuzz/<target>/: keep it, it is a seed from then on.
FUZZTIME ?= 1m
FUZZ_TARGETS := \
	./internal/input:FuzzJSON ./internal/input:FuzzHasCardNumber \
	./internal/httpapi:FuzzPlaceOrderBody ./internal/httpapi:FuzzPutProductBody \
	./internal/httpapi:FuzzCreatePromotionBody ./internal/httpapi:FuzzPutTradeAccount \
	./internal/httpapi:FuzzWarehouseStockBody \
	./internal/event:FuzzOrderPlacedRecord ./internal/event:FuzzOutcomeRecord ./internal/event:FuzzStockRecord
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

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
