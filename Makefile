# claimsvc: the two commands a newcomer needs are `make demo` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Starts a private PostgreSQL (and Mosquitto) for the command when none answers; see its header.
SERVICES := scripts/services.sh
# Pinned dev tools (golangci-lint, helm, kubeconform, the Go client generators oapi-codegen and ogen) live in their
# own module, away from the service's go.mod.
TOOL    := $(GO) tool -modfile=tools/go.mod

.PHONY: demo run tbemu test-tb build deps tools test test-go test-deploy test-long fuzz firmware-test firmware-sim idf-check vet lint lint-api lint-api-run clean help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

demo: ## run claimsvc with an in-process ThingsBoard emulator (PostgreSQL: database claimsvc_dev of the local one, or a private one it starts; open, on 127.0.0.1:8080)
	@$(GO) build -o bin/claimsvc ./cmd/claimsvc # built, not go run: Ctrl-C then ends it cleanly (go run exits 1)
	@$(SERVICES) --postgres CLAIMSVC_DATABASE_URL -- bin/claimsvc serve --demo --log-format=text

run: ## run claimsvc against PostgreSQL and Mosquitto on 127.0.0.1:1883 (private ones when none answer), on 127.0.0.1:8080, without keys (a development opt-out)
	@$(GO) build -o bin/claimsvc ./cmd/claimsvc
	@CLAIMSVC_INSECURE_NO_API_KEYS=true CLAIMSVC_INSECURE_NO_DATA_KEY=true \
		$(SERVICES) --postgres CLAIMSVC_DATABASE_URL --mosquitto -- bin/claimsvc serve --log-format=text \
		--http-addr=127.0.0.1:8080 --mqtt-url=tcp://127.0.0.1:1883

tbemu: ## run the ThingsBoard emulator alone with demo data (MQTT on 1884: Mosquitto has 1883)
	@$(GO) build -o bin/tbemu ./cmd/tbemu
	bin/tbemu --demo --mqtt-addr 127.0.0.1:1884 --http-addr 127.0.0.1:9090

test-tb: ## the claiming suite against a real ThingsBoard in Docker (takes minutes)
	CLAIMSVC_TB_DOCKER=1 $(GO) test ./internal/tbtest -run RealThingsBoard -count=1 -v -timeout 30m

build: ## build bin/claimsvc and bin/tbemu (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/claimsvc ./cmd/claimsvc
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/tbemu ./cmd/tbemu

vet: lint ## go vet, a gofmt check and golangci-lint
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd internal api migrations deploy scripts firmware/host/e2e)" || { gofmt -l cmd internal api migrations deploy scripts firmware/host/e2e; echo "gofmt needed"; exit 1; }

LINT = $(TOOL) golangci-lint
lint: ## golangci-lint with .golangci.yml (the version is pinned in tools/go.mod; the first run builds it)
	$(LINT) run ./...

# Redocly CLI, pinned in tools/redocly/package-lock.json: npm ci once (the npm registry), then the lint runs offline.
REDOCLY       := tools/redocly/node_modules/.bin/redocly
REDOCLY_STAMP := tools/redocly/node_modules/.installed
lint-api: ## Redocly lint of api/openapi.yaml (recommended-strict, api/redocly.yaml); needs Node.js 20.19+ and npm
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory lint-api-run; \
	else echo "lint-api: skipped: needs Node.js (20.19+ or 22.12+) and npm"; test -z "$$CI"; fi

lint-api-run: $(REDOCLY_STAMP)
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true $(REDOCLY) lint --config api/redocly.yaml api/openapi.yaml

$(REDOCLY_STAMP): tools/redocly/package-lock.json
	cd tools/redocly && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

deps: ## install the Debian packages the tests need (when root; otherwise says what is missing)
	@scripts/deps.sh

tools: ## build the pinned dev tools of tools/go.mod (the first build of helm takes minutes; later runs, a second)
	@$(TOOL) helm version >/dev/null
	@$(TOOL) kubeconform -v >/dev/null
	@$(TOOL) oapi-codegen -version >/dev/null
	@$(TOOL) ogen -version >/dev/null

test: deps vet lint-api firmware-test tools test-go ## everything: vet, the spec's lint, firmware host tests, Go tests with -race (chart, alerts, generated clients, bare-machine demo included)

test-go:
	$(SERVICES) --postgres CLAIMSVC_TEST_DATABASE_URL --mosquitto -- $(GO) test -race -count=1 -timeout 15m ./...

test-deploy: tools ## the Helm chart (rendered, validated with kubeconform), alerts (promtool), dashboard, compose file
	$(GO) test -count=1 ./deploy/...

FUZZTIME ?= 60s
test-long: ## long fault tests (25 SIGKILLs, 30 s outages, 3 replicas for a minute) and every fuzz target for FUZZTIME each
	CLAIMSVC_LONG_TESTS=1 $(SERVICES) --postgres CLAIMSVC_TEST_DATABASE_URL --mosquitto -- $(GO) test -count=1 -timeout 30m -v -run . ./internal/faulttest
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

.PHONY: screenshots
screenshots: ## the console's browser test, keeping its screenshots; refreshes docs/console.png
	rm -rf .cache/screenshots
	CLAIMSVC_SCREENSHOTS=$(CURDIR)/.cache/screenshots $(SERVICES) --postgres CLAIMSVC_TEST_DATABASE_URL -- $(GO) test -count=1 -run 'TestConsoleInTheBrowser$$' ./cmd/claimsvc
	cp .cache/screenshots/*-overview.png docs/console.png
	@ls .cache/screenshots

.PHONY: bench bench-full
bench: ## benchmark vs baselines on local PostgreSQL + Mosquitto, quick mode (under a minute); see docs/performance.md
	CGO_ENABLED=0 $(GO) build -o bin/claimsvc ./cmd/claimsvc
	$(SERVICES) --postgres CLAIMSVC_TEST_DATABASE_URL --mosquitto -- sh -c '$(GO) run ./cmd/claimload --claimsvc bin/claimsvc --database-url "$$CLAIMSVC_TEST_DATABASE_URL"'

bench-full: ## the full benchmark (minutes; 100,000-claim backlog): the figures in docs/performance.md
	CGO_ENABLED=0 $(GO) build -o bin/claimsvc ./cmd/claimsvc
	$(SERVICES) --postgres CLAIMSVC_TEST_DATABASE_URL --mosquitto -- sh -c '$(GO) run ./cmd/claimload --claimsvc bin/claimsvc --full --database-url "$$CLAIMSVC_TEST_DATABASE_URL"'
