# sessiontoken: build, test, run locally, benchmark, release.
# The version every target builds into the plugin and registers with Vault (-version).
VERSION  ?= $(shell cat VERSION)
MODULE   := github.com/sessiontoken/vault-plugin-secrets-sessiontoken
LDFLAGS  := -X $(MODULE).Version=$(VERSION)
PLUGIN   := bin/vault-plugin-secrets-sessiontoken
SIM      := bin/upstream-sim
# The Vault binary the tests and `make dev` use: VAULT_BIN=/path/to/vault (environment or command
# line) if set, otherwise scripts/vault.sh finds one >= 1.15 on PATH or builds Vault 1.21.0.
VAULT_BIN ?=
export VAULT_BIN
# The Terraform test's client: TOFU_BIN=/path/to/tofu if set, otherwise the OpenTofu that
# scripts/tofu.sh builds and caches; the hashicorp/vault provider always comes from its mirror.
TOFU_BIN ?=
export TOFU_BIN
# Stops the recipe when no Vault is found (a failed command substitution inside an assignment
# that prefixes a command would not).
FIND_VAULT := vault_bin="$$(scripts/vault.sh)" &&
# Sets TOFU_BIN and TOFU_MIRROR (scripts/tofu.sh prints them), or stops the recipe.
FIND_TOFU := tofu_env="$$(scripts/tofu.sh)" && eval "$$tofu_env" &&

.PHONY: all build vault test unit staticcheck fuzz monitoring integration dev bench mutate release release-check clean

all: build

build:
	go build -ldflags "$(LDFLAGS)" -o $(PLUGIN) ./cmd/vault-plugin-secrets-sessiontoken
	go build -o $(SIM) ./cmd/upstream-sim

# Prints the path of the Vault binary: VAULT_BIN, or one scripts/vault.sh finds or builds and caches.
vault:
	@scripts/vault.sh

# The one test command: vet, unit tests with -race, staticcheck, fuzzing, the reproducible-build check, the
# alert rules and a scrape checked with promtool, then the real-Vault integration suite (plugin
# built with -race too: a data race in the plugin fails the suite). Against another Vault:
# make test VAULT_BIN=/path/to/vault
test: unit staticcheck fuzz release-check monitoring integration

unit:
	go vet ./...
	go vet -tags integration ./integration/
	go test -race -count=1 ./...

# staticcheck (honnef.co/go/tools), pinned in tools/go.mod apart from the plugin's module, over
# every package and the integration suite. Any finding fails the build.
staticcheck:
	cd tools && go build -o ../bin/staticcheck honnef.co/go/tools/cmd/staticcheck
	bin/staticcheck ./...
	bin/staticcheck -tags integration ./integration/

# Each fuzz target for a fixed number of inputs, not a duration: a duration -fuzztime races Go's
# fuzz coordinator (golang/go#75804, fixed in Go 1.27) and can fail a run by chance with
# "context deadline exceeded". The counts are per target: FuzzProviderAnswers goes through HTTP
# and is the slowest. Run longer with: make fuzz FUZZTIME=10m (a duration, for local runs only).
FUZZ_CONFIG_N   ?= 3000x
FUZZ_TIMES_N    ?= 20000x
FUZZ_ANSWERS_N  ?= 1500x
FUZZ_SHOWN_N    ?= 20000x
FUZZ_JSONSTR_N  ?= 20000x
fuzz:
	go test -run='^$$' -fuzz='^FuzzConfigWrite$$' -fuzztime=$(or $(FUZZTIME),$(FUZZ_CONFIG_N)) .
	go test -run='^$$' -fuzz='^FuzzTokenTimes$$' -fuzztime=$(or $(FUZZTIME),$(FUZZ_TIMES_N)) ./upstream/
	go test -run='^$$' -fuzz='^FuzzProviderAnswers$$' -fuzztime=$(or $(FUZZTIME),$(FUZZ_ANSWERS_N)) ./upstream/
	go test -run='^$$' -fuzz='^FuzzShownPlantedSecrets$$' -fuzztime=$(or $(FUZZTIME),$(FUZZ_SHOWN_N)) ./upstream/
	go test -run='^$$' -fuzz='^FuzzJSONString$$' -fuzztime=$(or $(FUZZTIME),$(FUZZ_JSONSTR_N)) ./upstream/

# The shipped alert rules (monitoring/): promtool checks them and runs their unit tests, then
# lints a scrape of <mount>/metrics?format=prometheus that the real backend makes in-process
# (fake clock, simulator: the same every run). promtool comes with Debian's prometheus package
# (.ci/run installs it).
monitoring:
	@command -v promtool >/dev/null || { echo "promtool not found: apt-get install --no-install-recommends prometheus (.ci/run does)" >&2; exit 1; }
	promtool check rules monitoring/sessiontoken.rules.yml
	promtool test rules monitoring/sessiontoken.rules.test.yml
	@mkdir -p bin
	METRICS_SCRAPE_OUT="$(CURDIR)/bin/metrics.prom" go test -count=1 -run '^TestMetricsScrapeForPromtool$$' .
	promtool check metrics < bin/metrics.prom

# Includes TestBench's short variants, which assert counts (logins, 429s, failures, leases), not
# times. -parallel 16: the long tests (Agent, VSO clients, cluster) mostly wait on the clock, so
# they overlap instead of running two at a time (go test's default is GOMAXPROCS).
integration:
	go build -race -ldflags "$(LDFLAGS)" -o bin/race/vault-plugin-secrets-sessiontoken ./cmd/vault-plugin-secrets-sessiontoken
	go build -o $(SIM) ./cmd/upstream-sim
	go build -o bin/noopplugin ./bench/noopplugin
	$(FIND_VAULT) $(FIND_TOFU) VAULT_BIN="$$vault_bin" PLUGIN_BIN="$(CURDIR)/bin/race/vault-plugin-secrets-sessiontoken" \
	SIM_BIN="$(CURDIR)/$(SIM)" NOOP_PLUGIN_BIN="$(CURDIR)/bin/noopplugin" PLUGIN_VERSION=$(VERSION) \
	TOFU_BIN="$$TOFU_BIN" TOFU_MIRROR="$$TOFU_MIRROR" go test -race -count=1 -tags integration -timeout 20m -parallel 16 -v ./integration/

# Vault 1.15 to 1.21 (each minor's newest patch that builds, built and cached by scripts/vault.sh,
# ~20-25 minutes each on 2 cores, resuming from what is cached) and the integration suite's core
# on each: docs/compatibility.md. Not in `make test`: it does not fit CI's 90 minutes.
.PHONY: compat
compat:
	scripts/compat.sh

# The published figures (about 16 minutes on 2 cores): bench/RESULTS.md and the README's table.
bench: build
	go build -o bin/noopplugin ./bench/noopplugin
	$(FIND_VAULT) VAULT_BIN="$$vault_bin" PLUGIN_BIN="$(CURDIR)/$(PLUGIN)" SIM_BIN="$(CURDIR)/$(SIM)" \
	NOOP_PLUGIN_BIN="$(CURDIR)/bin/noopplugin" PLUGIN_VERSION=$(VERSION) BENCH_FULL=1 BENCH_OUT="$(CURDIR)/bench/RESULTS.md" \
	go test -count=1 -tags integration -timeout 60m -run '^TestBench$$' -v ./integration/

# A local Vault dev server with the plugin at plextrac/, plaspy/ and resolver/ against the
# simulator. Ctrl-C stops everything it started.
dev: build
	$(FIND_VAULT) VAULT_BIN="$$vault_bin" PLUGIN_VERSION=$(VERSION) scripts/dev.sh

# Mutation testing of the backend package and upstream/ with gremlins (76 minutes on 2 cores,
# 46 with MUTATE_WORKERS=2; not in CI): mutation/RESULTS.md with the date, the efficacy and what lived.
mutate:
	scripts/mutate.sh

# dist/: the plugin for linux/amd64, linux/arm64, darwin/amd64, darwin/arm64 and freebsd/amd64,
# reproducibly built (scripts/release-lib.sh), SHA256SUMS, and SHA256SUMS.sig with SIGN_KEY=<gpg key>.
# Refuses a VERSION that differs from the VERSION file or from a version tag on HEAD.
release:
	VERSION=$(VERSION) SIGN_KEY="$(SIGN_KEY)" scripts/release.sh

# Builds the plugin twice (this platform, two directories) with the release flags; fails unless
# the bytes are identical. RELEASE_CHECK_COLD=1: the second build from an empty cache (minutes).
release-check:
	VERSION=$(VERSION) scripts/release-check.sh

clean:
	rm -rf bin dist
