# cheops — `make run` runs everything in one process; `make test` runs the whole suite.
GO        ?= go
BIN       := bin/cheops
E2E_TIMEOUT ?= 30m
# E2E_FLAGS, e.g. -v for per-test progress and timings.
E2E_FLAGS ?=
# How long `make unit` fuzzes the scope-lang parser. Minimising each new input is capped at 200 runs:
# the default (60 s each) spends most of a short fuzz minimising instead of fuzzing.
FUZZ_TIME ?= 15s
# How long `make unit` fuzzes the API (FuzzAPI: arbitrary requests against the real handlers and an
# embedded etcd); see README (Tests) for a longer run.
API_FUZZ_TIME ?= 20s
# How many fuzzing workers (default: one per core); scripts/test.sh sets 1, beside the e2e tests.
FUZZ_PARALLEL ?=
FUZZ_PARALLEL_FLAG = $(if $(FUZZ_PARALLEL),-parallel $(FUZZ_PARALLEL))
# The race detector covers the packages whose tests exercise concurrency (the store's concurrent
# writers, the workflow's fan-out); the others run without it, since instrumenting client-go or a
# whole Temporal server would add many minutes to a cold build for code that is not ours.
# Every other package but the end-to-end ones runs without it: a new package is tested without
# being listed here.
MODULE    := github.com/cheops-io/cheops
RACE_PKGS  = . ./store ./workflows ./scope ./overrides ./auth ./seal
PLAIN_PKGS = $$($(GO) list ./... | grep -v -x -F $(foreach p,$(RACE_PKGS),-e $(MODULE)$(patsubst .%,%,$(p))) | grep -v -e '/test/')

.PHONY: all build run test unit unit-and-e2e e2e lint kube-tools openstack-up openstack-down cluster-up cluster-down cluster-status cluster-test chaos chaos-short bench bench-cluster clean
all: build

build:
	$(GO) build -o $(BIN) ./cmd/cheops

## run: cheops dev — API on :8080, Temporal on :7233, its Web UI on :8233, data in ./.cheops, and
## DEMO_SITES real kube-apiservers registered as sites paris, berlin, lyon (0 for none; about 270 MB
## each); the first run builds kube-apiserver into ~/.cache/cheops (about 5 minutes, once)
DEMO_SITES ?= 3
run: build
	@if [ "$(DEMO_SITES)" != 0 ] && [ -z "$$CHEOPS_KUBE_APISERVER" ]; then bash scripts/kube-tools.sh kube-apiserver >/dev/null; fi
	./$(BIN) dev --demo-sites $(DEMO_SITES)

## test: lint; then at the same time (scripts/test.sh) the end-to-end tests against real kube-apiservers
## (site-1 with a controller-manager, a scheduler and kwok) and OpenStack, and the unit and integration
## tests followed by the shortened chaos run against the production topology
test: lint unit-and-e2e

## unit-and-e2e: `make unit` then `make chaos-short`, beside `make e2e` (the end-to-end tests mostly
## wait: they use under half of two cores), each line prefixed with who wrote it
unit-and-e2e: kube-tools
	@GO=$(GO) MAKE="$(MAKE)" E2E_FLAGS="$(E2E_FLAGS)" bash scripts/test.sh

unit:
	$(GO) test -race -count=1 $(RACE_PKGS)
	$(GO) test -count=1 $(PLAIN_PKGS)
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZ_TIME) -fuzzminimizetime 200x $(FUZZ_PARALLEL_FLAG) ./scope
	$(GO) test -run '^$$' -fuzz FuzzAPI -fuzztime $(API_FUZZ_TIME) -fuzzminimizetime 200x $(FUZZ_PARALLEL_FLAG) ./api

## kube-tools: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok for the tests,
## built once per version into ~/.cache/cheops (scripts/kube-tools.sh)
kube-tools:
	@bash scripts/kube-tools.sh >/dev/null

## e2e: also brings up (and stops) a real two-region OpenStack through scripts/openstack.sh (root);
## the OpenStack tests and the others run as two processes at once (scripts/e2e.sh; E2E_RUN=pattern
## runs only those tests, in one process)
e2e: kube-tools
	@GO=$(GO) E2E_TIMEOUT=$(E2E_TIMEOUT) E2E_FLAGS="$(E2E_FLAGS)" E2E_RUN="$(E2E_RUN)" bash scripts/e2e.sh

## openstack-up / openstack-down: the e2e tests' OpenStack by hand (CHEOPS_OPENSTACK_REUSE=1 keeps it between runs)
openstack-up:
	@bash scripts/openstack.sh up
openstack-down:
	@bash scripts/openstack.sh down

## cluster-up / cluster-down / cluster-status: the production topology on this machine (scripts/cluster.sh):
## PostgreSQL, Temporal and its Web UI, a 3-member etcd, 2 servers and 2 workers, mutual TLS, state in ./.cluster
cluster-up:
	@bash scripts/cluster.sh up
cluster-down:
	@bash scripts/cluster.sh down
cluster-status:
	@bash scripts/cluster.sh status

## cluster-test: brings the cluster up, replicates a ConfigMap through it to a real kube-apiserver, takes it down
CLUSTER_TIMEOUT ?= 30m
cluster-test: kube-tools
	CHEOPS_CLUSTER_TEST=1 $(GO) test -count=1 -timeout $(CLUSTER_TIMEOUT) $(E2E_FLAGS) -run TestReplicateThroughCluster ./test/cluster/

## chaos: CHAOS_CLIENTS clients create, update and delete resources on 3 kube-apiservers for CHAOS_DURATION
## while a worker, an API server, an etcd member, the etcd leader and Temporal are SIGKILLed and restarted
CHAOS_CLIENTS ?= 4
CHAOS_DURATION ?= 90s
chaos: kube-tools
	CHEOPS_CLUSTER_TEST=1 CHEOPS_CHAOS_CLIENTS=$(CHAOS_CLIENTS) CHEOPS_CHAOS_DURATION=$(CHAOS_DURATION) \
		$(GO) test -count=1 -timeout $(CLUSTER_TIMEOUT) -v -run TestChaos ./test/cluster/

## chaos-short: the same with 2 clients for 20 s (they keep going until the last restart), as `make test`
## runs it; a hung run gives up after 10 min, its cluster stopped a minute before
chaos-short: CHAOS_CLIENTS = 2
chaos-short: CHAOS_DURATION = 20s
chaos-short: CLUSTER_TIMEOUT = 10m
chaos-short: chaos

## bench: latency, throughput and cost against real kube-apiservers; results in bench/results
BENCH_FLAGS ?=
bench: kube-tools
	cd bench && $(GO) run . -out results $(BENCH_FLAGS)

## bench-cluster: the same against the production topology (scripts/cluster.sh), a cluster of its own
## in a temporary folder (ports from 26100), stopped and removed afterwards, even on failure
bench-cluster: kube-tools
	@dir=$$(mktemp -d /tmp/cheops-bench-cluster.XXXXXX) && chmod 755 $$dir && \
	export CHEOPS_CLUSTER_DIR=$$dir CHEOPS_CLUSTER_BIN=$(CURDIR)/bin/cluster CHEOPS_CLUSTER_PORT_BASE=$${CHEOPS_CLUSTER_PORT_BASE:-26100} && \
	trap 'bash $(CURDIR)/scripts/cluster.sh down >/dev/null 2>&1; rm -rf '$$dir EXIT && \
	bash scripts/cluster.sh up >/dev/null && cd bench && $(GO) run . -out results -cluster $$dir $(BENCH_FLAGS)

lint:
	@bash scripts/large-files.sh
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd bench && $(GO) vet ./...
	"$$(bash scripts/tools.sh staticcheck)/staticcheck" ./...
	cd bench && "$$(bash ../scripts/tools.sh staticcheck)/staticcheck" ./...

clean:
	rm -rf bin
