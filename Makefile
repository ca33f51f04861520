# VRSky's build. `make run` starts the product on its embedded defaults;
# `make lint` and `make test` are what CI runs (.ci/run). Both install what they need.

GO       ?= go
BIN      := bin/vrsky
DATA     ?= ./data
LISTEN   ?= 127.0.0.1:8080
# VERSION is a semver: the nearest v* tag (v1.2.0, or v1.2.0-3-gabc1234 past it), else
# v0.0.0-dev; COMMIT the revision built. `vrsky version` prints both.
VERSION  ?= $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT   ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# The concurrent core runs under the race detector.
RACE_PKGS := ./runtime/... ./platform/... ./builtin/... ./api/... ./host/...
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build ui wasm fixtures run run-prod-like demo test test-deps bench lint docs clean image

all: build

wasm: ## build the Wasm connectors that ship inside the binary
	@echo "==> building the shipped Wasm connectors (wasm-connectors/build.sh)"
	@bash wasm-connectors/build.sh

fixtures: ## write the registry's hand-assembled test modules (registry/testdata/*.wasm)
	@echo "==> writing the registry's test modules (go run ./registry/testdata/mkfixtures)"
	@$(GO) run ./registry/testdata/mkfixtures

ui: ## build the web UI bundle that ships inside the binary (ui/build.sh; Node.js from apt when missing)
	@echo "==> building the web UI (ui/build.sh)"
	@sh ui/build.sh

build: ui wasm ## build bin/vrsky
	@echo "==> go build $(BIN)"
	@$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/vrsky

run: build ## start vrsky serve on the embedded defaults
	@echo "==> starting VRSky on http://$(LISTEN) (data in $(DATA); Ctrl-C stops it)"
	@if [ -f $(DATA)/admin.key ]; then echo "==> admin API key: $$(cat $(DATA)/admin.key)"; fi
	@./$(BIN) serve --data $(DATA) --listen $(LISTEN)

run-prod-like: build test-deps ## vrsky serve against a local PostgreSQL and S3 server (the production shape)
	@echo "==> starting PostgreSQL and versitygw (data in $(DATA)-prodlike), then VRSky on http://$(LISTEN)"
	@$(GO) run ./internal/testenv/cmd/vrsky-prodlike -dir $(DATA)-prodlike -- ./$(BIN) serve --data $(DATA)-prodlike/vrsky --listen $(LISTEN)

demo: build test-deps ## run a demo against local stand-ins: make demo NAME=github-slack|csv-postgres|cdc-http|orders [ARGS=--once]
	@if [ -z "$(NAME)" ]; then echo "make demo NAME=...: one of github-slack, csv-postgres, cdc-http, orders (docs/demos.md)"; exit 2; fi
	@./$(BIN) demo $(NAME) $(ARGS)

test-deps: ## install what the tests start: PostgreSQL and the S3 server
	@bash scripts/test-deps.sh

test: test-deps ui wasm fixtures ## everything CI runs
	@echo "==> go vet"
	@$(GO) vet ./...
	@echo "==> go test -race (core packages, one package at a time: several start 3-node NATS clusters)"
	@$(GO) test -race -p 1 -count=1 -timeout 30m $(RACE_PKGS)
	@echo "==> go test -fuzz: the Wasm structure check, 20 s (corpus in host/wasmcheck/testdata/fuzz)"
	@$(GO) test -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime 20s ./host/wasmcheck
	@echo "==> go test (everything else)"
	@$(GO) test -count=1 -timeout 30m $$($(GO) list ./... | grep -v -E '/(runtime|platform|builtin|api|host)(/|$$)')

bench: build test-deps fixtures ## performance figures (not pass/fail): Go benchmarks and the load driver
	@echo "==> Go benchmarks"
	@$(GO) test -run '^$$' -bench . -benchmem -count 3 ./host/... ./wasm-connectors/... ./runtime/... ./platform/tenancy/
	@echo "==> end-to-end load: webhook -> JetStream -> HTTP sink, one message a request, with the raw JetStream and HTTP-hop references (medians of 3)"
	@$(GO) run ./cmd/vrsky-bench -duration 30s -rounds 3
	@echo "==> the same with batched edges: 4 clients sending NDJSON requests of 50 messages, the sink sending JSON arrays of up to 100 (medians of 3)"
	@$(GO) run ./cmd/vrsky-bench -duration 30s -rounds 3 -clients 4 -ingest-batch 50 -sink-batch 100
	@echo "==> end-to-end load with the Wasm jq and filter steps, one message a request, then batched edges"
	@$(GO) run ./cmd/vrsky-bench -duration 30s -steps -skip-reference
	@$(GO) run ./cmd/vrsky-bench -duration 30s -rounds 3 -steps -skip-reference -clients 4 -ingest-batch 50 -sink-batch 100
	@echo "==> --nats-sync always (fsync before every acknowledgement), batched edges, against raw JetStream with fsync (medians of 3)"
	@$(GO) run ./cmd/vrsky-bench -duration 30s -rounds 3 -nats-sync always -clients 8 -ingest-batch 100 -sink-batch 100
	@echo "==> one 10 MiB payload end to end: peak memory growth of vrsky serve"
	@$(GO) run ./cmd/vrsky-bench -payload-mib 10
	@echo "==> raw JetStream through the platform account vs tenant accounts (one embedded operator-mode server, 3 alternating rounds)"
	@$(GO) run ./cmd/vrsky-bench -accounts
	@echo "==> scale-out: delivered msgs/s with 1, 2 and 3 vrsky serve nodes on one 3-node NATS cluster, ratios to one node"
	@$(GO) run ./cmd/vrsky-bench -nodes 3 -duration 20s
	@echo "==> connector benchmarks (real PostgreSQL, HTTP servers and files)"
	@$(GO) test -run '^$$' -bench . -benchmem -count 1 ./builtin/... ./registry/...
	@echo "==> CSV file (1M rows) -> PostgreSQL, against PostgreSQL's own COPY"
	@$(GO) run ./cmd/vrsky-bench -csv-rows 1000000
	@echo "==> PostgreSQL CDC -> HTTP sink: a burst of 200,000 changes, then 100,000 paced at 5,000/s"
	@$(GO) run ./cmd/vrsky-bench -cdc-changes 200000
	@$(GO) run ./cmd/vrsky-bench -cdc-changes 100000 -cdc-rate 5000
	@echo "==> the four demos under load, each against its stand-ins (vrsky demo NAME --once --load 20000): msgs/s and lost"
	@for d in github-slack csv-postgres cdc-http orders; do ./$(BIN) demo $$d --once --load 20000 || exit 1; done

docs: ## regenerate docs/api.md from api/openapi.json (a test fails when it is stale)
	@echo "==> writing docs/api.md from api/openapi.json (internal/apidoc)"
	@$(GO) test -count=1 -run '^TestAPIReference$$' ./internal/apidoc -update

IMAGE ?= vrsky:$(VERSION)
image: ## build the container image (deploy/docker/Dockerfile) with docker, podman or buildah
	@b=""; for c in docker podman buildah; do \
		if command -v $$c >/dev/null 2>&1 && $$c info >/dev/null 2>&1; then b=$$c; break; fi; done; \
	if [ -z "$$b" ]; then echo "make image: no working container builder (docker with a daemon, podman or buildah); install one, or build deploy/docker/Dockerfile elsewhere"; exit 1; fi; \
	echo "==> $$b build $(IMAGE) (deploy/docker/Dockerfile)"; \
	if [ "$$b" = buildah ]; then sub=bud; else sub=build; fi; \
	$$b $$sub -f deploy/docker/Dockerfile --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMAGE) .

lint: ## go vet, gofmt, staticcheck
	@$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf bin
	rm -f wasm-connectors/build/*.wasm wasm-connectors/build/.stamp-*
	rm -f registry/testdata/*.wasm
