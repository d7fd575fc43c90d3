# The two commands in README.md: `go run ./cmd/workshop` and `make test`.
GO       ?= go
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PKGS     := ./...
FUZZTIME ?= 30s
TESTFUZZTIME ?= 5s

.PHONY: run test deps lint bench fuzz vendor-js build

run:
	$(GO) run ./cmd/workshop

build:
	CGO_ENABLED=0 $(GO) build -o bin/workshop ./cmd/workshop
	CGO_ENABLED=0 $(GO) build -o bin/workshop-bench ./cmd/workshop-bench

# deps installs what the tests need from Debian's packages when missing:
# redis-server (with redis-cli) for the Redis tests, chromium for the
# browser tests, nginx to run deploy/nginx.conf in the drain test.
deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: deps
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	$(MAKE) fuzz FUZZTIME=$(TESTFUZZTIME)

lint:
	gofmt -l . | tee /dev/stderr | (! read -r _)
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

# bench runs the Go benchmarks, then every workshop-bench scenario with
# 1,000 attendees against a server of its own (free port, temporary data
# directory, stopped afterwards); under a minute. README.md "Performance"
# has the full-size runs.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 200ms ./room/ ./hub/ ./hub/redis/
	GO=$(GO) sh cmd/workshop-bench/bench.sh -- -scenario all -clients 1000 -join-window 3s -vote-window 3s -idle-settle 3s

# fuzz runs every fuzz target for FUZZTIME each (go test runs one target
# per invocation). The seed corpora also run as plain tests in `test`.
FUZZ_TARGETS := ./room/:FuzzRoom ./room/:FuzzParseModel ./hub/:FuzzDecodeClientMessage ./hub/:FuzzCreateRequest
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# vendor-js copies the pinned front-end modules (installed with npm) into
# frontend/static/vendor. Only needed to change their versions: the copies
# are committed, so go build never needs node.
vendor-js:
	sh frontend/vendor.sh
