# Baton — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BATON_ADDR ?= 127.0.0.1:8484
FUZZTIME ?= 60s
# Container images (make images): FROM scratch, built locally, no registry.
IMAGE_TAG ?= dev
SERVER_IMAGE ?= baton/server:$(IMAGE_TAG)
AGENT_IMAGE ?= baton/agent:$(IMAGE_TAG)

export CGO_ENABLED := 0

.PHONY: help build run test bench load fuzz lint image images clean

help: ## Show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## Build bin/baton-server and bin/baton-agent (static, CGO_ENABLED=0)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./server/cmd/baton-server ./agent/cmd/baton-agent

image: build ## Build the default step image (busybox on scratch) from the host's static busybox
	$(BIN)/baton-agent build-image

images: build ## Build the container images baton/server:dev and baton/agent:dev (FROM scratch; IMAGE_TAG=dev)
	deploy/docker/build.sh $(BIN) $(SERVER_IMAGE) $(AGENT_IMAGE) $(VERSION)

run: build ## Run a server (SQLite in ./.baton) and one agent; Ctrl-C stops both
	BATON_ADDR=$(BATON_ADDR) deploy/dev/run.sh

# The race detector needs cgo; everything else is built with CGO_ENABLED=0.
test: ## Run every test with -race (needs Docker; CI=true forbids skipping)
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m ./...

bench: build ## Run the Go benchmarks, then the load driver against bin/baton-server (docs/performance.md)
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./agent/cmd/baton-load -server $(BIN)/baton-server $(LOAD_ARGS)

# LOAD_ARGS passes flags to the driver, e.g. make load LOAD_ARGS='-fleet 2000 -keep'.
load: build ## Run only the load driver (real server, simulated agents); flags in LOAD_ARGS
	$(GO) run ./agent/cmd/baton-load -server $(BIN)/baton-server $(LOAD_ARGS)

fuzz: ## Fuzz the runbook, outputs and expression parsers, the payload envelope, the masker and artifact keys, FUZZTIME each (default 60s)
	$(GO) test ./shared/runbook -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s
	$(GO) test ./shared/runbook -run '^$$' -fuzz '^FuzzParseOutputs$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s
	$(GO) test ./shared/expr -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s
	$(GO) test ./shared/expr -run '^$$' -fuzz '^FuzzTemplate$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s
	$(GO) test ./shared/envelope -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s
	$(GO) test ./shared/envelope -run '^$$' -fuzz '^FuzzOpenSession$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s
	$(GO) test ./shared/mask -run '^$$' -fuzz '^FuzzMask$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s
	$(GO) test ./shared/artifact -run '^$$' -fuzz '^FuzzValidateKey$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...

clean: ## Remove build output and local run state
	rm -rf $(BIN) .baton
