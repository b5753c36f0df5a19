#!/usr/bin/env bash
# make compat: builds Vault for each minor from 1.15 to 1.21 (scripts/vault.sh, cached next to
# the suite's own Vault) and runs the integration suite's core against each. Not part of
# `make test`: each build takes ~20-25 minutes of 2 cores, far beyond CI's 90 minutes.
#
# Resumes: a version whose binary is cached is not built again, nor is one whose build failed
# (COMPAT_RETRY=1 tries those again). Builds run one at a time at low priority, each with its own
# Go build cache, deleted after the build (one Vault build fills ~5 GiB of it), so that the
# default build cache is never cleared. Per version: build-VERSION.log, test-VERSION.log and a
# row in results.md under the cache's compat/ folder; docs/compatibility.md is written from them.
#
#   COMPAT_VERSIONS="1.19.5,1.19.0 1.18.0"  only these minors (the default: VERSIONS below)
#   COMPAT_SKIP_BUILD=1              test only versions already built
#   HEAVY_LOCK=FILE                  run each test through `flock FILE` (machines shared by people)
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${SESSIONTOKEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sessiontoken}
out="$cache/compat"
mkdir -p "$out"

# Per minor, newest first, the builds to try, in order: the newest patch on the Go module proxy,
# then x.0, each with the sdk its go.mod requires unless VERSION:SDK names another (a published
# version, or a commit where the proxy serves commits). Vault's in-tree sdk can lie between two
# published sdks, and then it does not compile with either (1.20 with v0.18.0 and v0.19.0; 1.21.4,
# left out): the first that builds is tested.
VERSIONS=${COMPAT_VERSIONS:-1.21.0 1.20.4,1.20.0 1.19.5,1.19.0 1.18.5,1.18.0 1.17.6,1.17.0 1.16.3,1.16.0 1.15.6,1.15.0}

# The suite's core: register with -version and discover, config with verify and token read,
# lease renew inside and outside the window and Agent across token lifetimes, static-token
# through Agent, plugin reload (serving, and the credentials hold across it, then rotate),
# metrics scraped by Prometheus, a restart and a raft failover.
CORE='^(TestPluginIsRegisteredAndDiscoverable|TestConfigAndTokenThroughTheCLI|TestLeaseRenewInsideAndOutsideTheWindow|TestAgentNeverRendersAnExpiredToken|TestAgentRendersTheLeaseFreeTokenWithoutLeases|TestPluginReloadKeepsServing|TestCredentialsHoldSurvivesAPluginReload|TestPrometheusScrapesAMount|TestRestartKeepsSessionAndLeases|TestRaftFailoverKeepsServing)$'

VERSION=$(cat VERSION)
MODULE=github.com/sessiontoken/vault-plugin-secrets-sessiontoken
go build -race -ldflags "-X $MODULE.Version=$VERSION" -o bin/race/vault-plugin-secrets-sessiontoken ./cmd/vault-plugin-secrets-sessiontoken
go build -o bin/upstream-sim ./cmd/upstream-sim
go build -o bin/noopplugin ./bench/noopplugin

# extra_require VERSION: VAULT_REQUIRE for scripts/vault.sh. 1.17 imports the otel otlptrace
# exporter, which its go.mod does not list: at its latest version (v1.47.0) it brings grpc v1.82,
# which grpc-gcp-go v1.5.0 no longer compiles against; pinned to 1.17's otel version instead.
extra_require() { case $1 in 1.17.*) echo "go.opentelemetry.io/otel/exporters/otlp/otlptrace v1.28.0" ;; esac; }

# build VERSION[:SDK]: the cached binary's path on stdout, or nothing when the build failed.
build() {
  local v=${1%%:*} sdk= name=${1%%:*} start rc=0 bin log
  case $1 in *:*) sdk=${1#*:} name="$v-sdk-$sdk" ;; esac
  log="$out/build-$name.log"
  if bin=$(VAULT_BIN= VAULT_VERSION=$v scripts/vault.sh --cached 2>/dev/null); then
    echo "$bin"
    return
  fi
  if [ -e "$out/build-$name.failed" ] && [ -z "${COMPAT_RETRY:-}" ]; then
    echo "Vault $1: its build failed before (see $log; COMPAT_RETRY=1 tries again)" >&2
    return
  fi
  [ -z "${COMPAT_SKIP_BUILD:-}" ] || return 0
  echo "Vault $1: building (~20-25 minutes), log in $log" >&2
  start=$(date +%s)
  bin=$(GOCACHE="$cache/compat-gocache" VAULT_BIN= VAULT_VERSION=$v VAULT_SDK=$sdk VAULT_REQUIRE="$(extra_require "$v")" nice -n 19 scripts/vault.sh 2>"$log") || rc=$?
  rm -rf "$cache/compat-gocache"
  echo "build of Vault $1: exit $rc after $(($(date +%s) - start)) s" | tee -a "$log" >&2
  if [ "$rc" -ne 0 ]; then
    touch "$out/build-$name.failed"
    return
  fi
  rm -f "$out/build-$name.failed"
  echo "$bin"
}

status=0
for patches in $VERSIONS; do
  bin=
  for try in ${patches//,/ }; do
    bin=$(build "$try")
    v=${try%%:*}
    [ -z "$bin" ] || break
  done
  if [ -z "$bin" ]; then
    [ -n "${COMPAT_SKIP_BUILD:-}" ] && continue
    echo "| ${patches//,/ or } | $(date -u +%F) | does not build | see build-*.log |" >>"$out/results.md"
    status=1
    continue
  fi
  log="$out/test-$v.log"
  echo "Vault $v: the core suite, log in $log" >&2
  rc=0
  ${HEAVY_LOCK:+flock "$HEAVY_LOCK"} env VAULT_BIN="$bin" PLUGIN_BIN="$PWD/bin/race/vault-plugin-secrets-sessiontoken" \
    SIM_BIN="$PWD/bin/upstream-sim" NOOP_PLUGIN_BIN="$PWD/bin/noopplugin" PLUGIN_VERSION="$VERSION" \
    go test -race -count=1 -tags integration -timeout 20m -parallel 16 -v -run "$CORE" ./integration/ >"$log" 2>&1 || rc=$?
  failed=$(sed -n 's/^--- FAIL: \(Test[A-Za-z0-9_]*\).*/\1/p' "$log" | tr '\n' ' ')
  # A renamed test would drop out of CORE silently: every name in it must have passed or failed.
  want=$(echo "$CORE" | tr -cs 'A-Za-z0-9_' '\n' | grep -c '^Test')
  ran=$(grep -cE '^--- (PASS|FAIL): Test' "$log" || true)
  if [ "$rc" -eq 0 ] && [ "$ran" -ne "$want" ]; then
    rc=1 failed="ran $ran of the $want core tests"
  fi
  if [ "$rc" -eq 0 ]; then
    row="| $v | $(date -u +%F) | pass | |"
  else
    row="| $v | $(date -u +%F) | fail | ${failed:-exit $rc, see test-$v.log} |"
    status=1
  fi
  echo "$row" | tee -a "$out/results.md"
done
echo "results: $out/results.md" >&2
exit "$status"
