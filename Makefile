# sessiontoken: build, test, run locally, benchmark.
VERSION  ?= v0.1.0
MODULE   := github.com/sessiontoken/vault-plugin-secrets-sessiontoken
LDFLAGS  := -X $(MODULE).Version=$(VERSION)
PLUGIN   := bin/vault-plugin-secrets-sessiontoken
SIM      := bin/upstream-sim

.PHONY: all build vault test unit fuzz integration dev bench mutate clean

all: build

build:
	go build -ldflags "$(LDFLAGS)" -o $(PLUGIN) ./cmd/vault-plugin-secrets-sessiontoken
	go build -o $(SIM) ./cmd/upstream-sim

# Prints the path of a Vault binary, building and caching Vault $(VAULT_VERSION) on first use.
vault:
	@scripts/vault.sh

# The one test command: vet, unit tests with -race, then the real-Vault integration suite
# (plugin built with -race too: a data race in the plugin fails the suite).
test: unit fuzz integration

unit:
	go vet ./...
	go vet -tags integration ./integration/
	go test -race -count=1 ./...

# Each fuzz target for a fixed number of inputs, not a duration: a duration -fuzztime races Go's
# fuzz coordinator (golang/go#75804, fixed in Go 1.27) and can fail a run by chance with
# "context deadline exceeded". The counts are per target: FuzzProviderAnswers goes through HTTP
# and is the slowest. Run longer with: make fuzz FUZZTIME=10m (a duration, for local runs only).
FUZZ_CONFIG_N   ?= 3000x
FUZZ_TIMES_N    ?= 20000x
FUZZ_ANSWERS_N  ?= 1500x
FUZZ_SCRUB_N    ?= 5000x
FUZZ_JSONSTR_N  ?= 20000x
fuzz:
	go test -run='^$$' -fuzz='^FuzzConfigWrite$$' -fuzztime=$(or $(FUZZTIME),$(FUZZ_CONFIG_N)) .
	go test -run='^$$' -fuzz='^FuzzTokenTimes$$' -fuzztime=$(or $(FUZZTIME),$(FUZZ_TIMES_N)) ./upstream/
	go test -run='^$$' -fuzz='^FuzzProviderAnswers$$' -fuzztime=$(or $(FUZZTIME),$(FUZZ_ANSWERS_N)) ./upstream/
	go test -run='^$$' -fuzz='^FuzzScrubPlantedSecrets$$' -fuzztime=$(or $(FUZZTIME),$(FUZZ_SCRUB_N)) ./upstream/
	go test -run='^$$' -fuzz='^FuzzJSONString$$' -fuzztime=$(or $(FUZZTIME),$(FUZZ_JSONSTR_N)) ./upstream/

# Includes TestBench's short variants, which assert counts (logins, 429s, failures, leases), not
# times. -parallel 16: the long tests (Agent, VSO clients, cluster) mostly wait on the clock, so
# they overlap instead of running two at a time (go test's default is GOMAXPROCS).
integration:
	go build -race -ldflags "$(LDFLAGS)" -o bin/race/vault-plugin-secrets-sessiontoken ./cmd/vault-plugin-secrets-sessiontoken
	go build -o $(SIM) ./cmd/upstream-sim
	go build -o bin/noopplugin ./bench/noopplugin
	VAULT_BIN="$$(scripts/vault.sh)" PLUGIN_BIN="$(CURDIR)/bin/race/vault-plugin-secrets-sessiontoken" \
	SIM_BIN="$(CURDIR)/$(SIM)" NOOP_PLUGIN_BIN="$(CURDIR)/bin/noopplugin" PLUGIN_VERSION=$(VERSION) \
	go test -race -count=1 -tags integration -timeout 20m -parallel 16 -v ./integration/

# The published figures (about 16 minutes on 2 cores): bench/RESULTS.md and the README's table.
bench: build
	go build -o bin/noopplugin ./bench/noopplugin
	VAULT_BIN="$$(scripts/vault.sh)" PLUGIN_BIN="$(CURDIR)/$(PLUGIN)" SIM_BIN="$(CURDIR)/$(SIM)" \
	NOOP_PLUGIN_BIN="$(CURDIR)/bin/noopplugin" PLUGIN_VERSION=$(VERSION) BENCH_FULL=1 BENCH_OUT="$(CURDIR)/bench/RESULTS.md" \
	go test -count=1 -tags integration -timeout 60m -run '^TestBench$$' -v ./integration/

# A local Vault dev server with the plugin at plextrac/, plaspy/ and resolver/ against the
# simulator. Ctrl-C stops everything it started.
dev: build
	VAULT_BIN="$$(scripts/vault.sh)" PLUGIN_VERSION=$(VERSION) scripts/dev.sh

# Mutation testing of the backend package and upstream/ with gremlins (about an hour on
# 2 cores; not in CI): mutation/RESULTS.md with the date, the efficacy and what lived.
mutate:
	scripts/mutate.sh

clean:
	rm -rf bin
