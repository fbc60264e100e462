# claimsvc: the two commands a newcomer needs are `make demo` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: demo run tbemu test-tb build deps test test-go test-long fuzz firmware-test firmware-sim idf-check vet lint clean help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

demo: ## run claimsvc with an in-process ThingsBoard emulator (needs only local PostgreSQL; open, on 127.0.0.1:8080)
	$(GO) run ./cmd/claimsvc serve --demo --log-format=text

run: ## run claimsvc against local PostgreSQL and Mosquitto (127.0.0.1:1883), on 127.0.0.1:8080, without keys (a development opt-out)
	CLAIMSVC_INSECURE_NO_API_KEYS=true CLAIMSVC_INSECURE_NO_DATA_KEY=true \
		$(GO) run ./cmd/claimsvc serve --log-format=text --http-addr=127.0.0.1:8080 --mqtt-url=tcp://127.0.0.1:1883

tbemu: ## run the ThingsBoard emulator alone with demo data (MQTT on 1884: Mosquitto has 1883)
	$(GO) run ./cmd/tbemu --demo --mqtt-addr 127.0.0.1:1884 --http-addr 127.0.0.1:9090

test-tb: ## the claiming suite against a real ThingsBoard in Docker (takes minutes)
	CLAIMSVC_TB_DOCKER=1 $(GO) test ./internal/tbtest -run RealThingsBoard -count=1 -v -timeout 30m

build: ## build bin/claimsvc and bin/tbemu (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/claimsvc ./cmd/claimsvc
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/tbemu ./cmd/tbemu

vet: lint ## go vet, a gofmt check and golangci-lint
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd internal api migrations deploy firmware/host/e2e)" || { gofmt -l cmd internal api migrations deploy firmware/host/e2e; echo "gofmt needed"; exit 1; }

LINT = $(GO) tool -modfile=tools/go.mod golangci-lint
lint: ## golangci-lint with .golangci.yml (the version is pinned in tools/go.mod; the first run builds it)
	$(LINT) run ./...

deps: ## install the Debian packages the tests need (when root; otherwise says what is missing)
	@scripts/deps.sh

test: deps vet firmware-test test-go ## everything: vet, firmware host tests, Go tests with -race

test-go:
	$(GO) test -race -count=1 -timeout 15m ./...

FUZZTIME ?= 60s
test-long: ## long fault tests (25 SIGKILLs, 30 s outages, 3 replicas for a minute) and every fuzz target for FUZZTIME each
	CLAIMSVC_LONG_TESTS=1 $(GO) test -count=1 -timeout 30m -v -run . ./internal/faulttest
	$(MAKE) --no-print-directory fuzz

fuzz: ## run each fuzz target for FUZZTIME (default 60s)
	@for t in $$($(GO) test -list '^Fuzz' ./internal/http | grep '^Fuzz'); do \
		echo "== $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./internal/http || exit 1; done

firmware-test: ## firmware: claim_core unit tests + 32-bit cross build
	$(MAKE) --no-print-directory -C firmware/host test

firmware-sim: ## firmware: build the Linux simulator firmware/host/build/claim-sim
	$(MAKE) --no-print-directory -C firmware/host sim

idf-check: ## firmware: type-check against an ESP-IDF tree: IDF_PATH=… [MQTT_PATH=… for v6] (not in make test)
	$(MAKE) --no-print-directory -C firmware idf-check

clean:
	rm -rf bin firmware/build/idf-check
	$(MAKE) --no-print-directory -C firmware/host clean

.PHONY: bench bench-full
bench: ## benchmark vs baselines on local PostgreSQL + Mosquitto, quick mode (under a minute); see docs/performance.md
	CGO_ENABLED=0 $(GO) build -o bin/claimsvc ./cmd/claimsvc
	$(GO) run ./cmd/claimload --claimsvc bin/claimsvc

bench-full: ## the full benchmark (minutes; 100,000-claim backlog): the figures in docs/performance.md
	CGO_ENABLED=0 $(GO) build -o bin/claimsvc ./cmd/claimsvc
	$(GO) run ./cmd/claimload --claimsvc bin/claimsvc --full
