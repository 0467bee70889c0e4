# mcpes — `make test` installs what the tests need on a fresh machine and runs them
# with the race detector. `.ci/run` calls exactly this.

GO      ?= go
NPM_DIR := testdata/npm
GOBIN   := $(CURDIR)/bin
export PATH := $(GOBIN):$(PATH)

.PHONY: test test-volume deps npm nats-server browser build bench demo fuzz

test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m ./...
	$(MAKE) test-volume

# The full-volume pub/sub test: 100,000 events through a real JetStream server. Run
# without the race detector, which instruments the embedded NATS server too and would
# make it take minutes (under -race the same test runs 20,000 events).
test-volume:
	MCPES_RELAY_EVENTS=100000 $(GO) test -count=1 -timeout 10m -run 'TestNATS_100kEvents' ./relay/

deps: npm nats-server browser
	$(GO) mod download

# npm packages (reference MCP servers, the official TypeScript SDK client, peer
# gateways for benchmarks) from the committed lockfile.
npm:
	@if [ -f $(NPM_DIR)/package-lock.json ]; then \
		cd $(NPM_DIR) && npm ci --no-audit --no-fund --loglevel=error; \
	fi

# Debian's chromium, which the console's browser tests (e2e/console_test.go) drive
# through playwright-core: Playwright's own browser download does not work here.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

# nats-server built from the Go module, for tests and the distributed demo.
nats-server:
	@test -x $(GOBIN)/nats-server || GOBIN=$(GOBIN) $(GO) install github.com/nats-io/nats-server/v2@v2.15.2

build:
	$(GO) build -o $(GOBIN)/mcpes ./cmd/mcpes

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

demo:
	$(GO) run ./cmd/mcpes serve --config examples/mcpes.yaml
