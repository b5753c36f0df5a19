#!/usr/bin/env bash
# Prints the path of a Vault binary the tests can use, building it if needed.
#
# VAULT_BIN, when set, wins (`make test VAULT_BIN=/path/to/vault`): a path or a command name,
# printed as an absolute path, since the suite links to it from another directory. Otherwise a
# `vault` on PATH at >= 1.15 is used as is, or else Vault $VAULT_VERSION is built from the Go
# module proxy through a small wrapper module (Vault's own go.mod replaces api/sdk with
# sub-folders that are not in the module download, so `go install` refuses it) and cached
# outside the repository, so only the first run on a machine pays for it (~20 min on 2 cores).
#
# VAULT_VERSION=1.20.4 scripts/vault.sh builds (or finds cached) that version instead; a `vault` on
# PATH is then used only if it is that version. The wrapper's pins come from the version's own
# go.mod (see wrapper_gomod): `scripts/vault.sh --wrapper-gomod VERSION GOMOD` prints the wrapper's
# go.mod without building. scripts/compat.sh builds and tests every minor this way.
set -euo pipefail

# wrapper_gomod VERSION GOMOD: the wrapper module's go.mod for Vault VERSION whose own go.mod is
# the file GOMOD. Vault's go.mod replaces api and sdk with its sub-folders, which the module
# download lacks, so the wrapper pins them to the published versions that go.mod requires; and
# replace lines only apply in the main module, so the wrapper repeats every replace of Vault's
# go.mod that names another module (signedxml; keyring from 1.18.5; go-proxyproto in 1.17.6 and
# 1.18.0: the table in docs/compatibility.md). For 1.21.0 this gives sdk v0.20.0, api v1.22.0,
# keyring and signedxml, as it always did. VAULT_SDK=VERSION pins that sdk instead, for a Vault
# whose in-tree sdk is ahead of the one its go.mod requires (a published version, or the
# release's commit where the module proxy serves commits).
wrapper_gomod() {
  local version=$1 gomod=$2 sdk api
  sdk=${VAULT_SDK:-$(sed -n 's#^[[:space:]]*github.com/hashicorp/vault/sdk \(v[^ ]*\).*#\1#p' "$gomod" | head -n1)}
  api=$(sed -n 's#^[[:space:]]*github.com/hashicorp/vault/api \(v[^ ]*\).*#\1#p' "$gomod" | head -n1)
  [ -n "$sdk" ] && [ -n "$api" ] ||
    { echo "Vault v$version's go.mod requires no hashicorp/vault/sdk or api version to pin" >&2; return 1; }
  printf 'module sessiontoken/vaultbuild\n\ngo 1.25\n\nrequire github.com/hashicorp/vault v%s\n\nreplace (\n' "$version"
  printf '\tgithub.com/hashicorp/vault/sdk => github.com/hashicorp/vault/sdk %s\n' "$sdk"
  printf '\tgithub.com/hashicorp/vault/api => github.com/hashicorp/vault/api %s\n' "$api"
  # `replace A => B v` lines, one-line form, whose target is a module (not ./a-folder).
  sed -n 's#^replace \([^ ]*\( v[^ ]*\)\{0,1\} => [^./][^ ]* v[^ ]*\)[[:space:]]*$#\t\1#p' "$gomod"
  printf ')\n'
  # VAULT_REQUIRE="module version ...": requires the wrapper adds, for a package Vault imports from
  # a module its go.mod does not list, which `go mod tidy` would otherwise fetch at its latest
  # version (and drag newer dependencies in with it).
  if [ -n "${VAULT_REQUIRE:-}" ]; then printf '\nrequire (\n'; printf '\t%s %s\n' $VAULT_REQUIRE; printf ')\n'; fi
}

# go_minor GOMOD: 22 for a go.mod that says `go 1.22.5`.
go_minor() { sed -n 's/^go 1\.\([0-9]*\).*/\1/p' "$1"; }

if [ "${1:-}" = --wrapper-gomod ]; then
  wrapper_gomod "$2" "$3"
  exit
fi

asked_version=${VAULT_VERSION:-}
VAULT_VERSION=${VAULT_VERSION:-1.21.0}
cache=${SESSIONTOKEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sessiontoken}
bin="$cache/vault-$VAULT_VERSION"

# vault_minor VAULT: "1 15" for Vault v1.15.x, nothing when `VAULT version` says something else.
vault_minor() { { "$1" version 2>/dev/null || true; } | sed -n 's/^Vault v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p'; }

if [ -n "${VAULT_BIN:-}" ]; then
  path=$(command -v -- "$VAULT_BIN") ||
    { echo "VAULT_BIN=$VAULT_BIN: not an executable file nor a command on PATH" >&2; exit 1; }
  case $path in /*) ;; *) path=$PWD/$path ;; esac
  v=$(vault_minor "$path")
  [ -n "$v" ] || { echo "VAULT_BIN=$path: \`$path version\` does not print a Vault version" >&2; exit 1; }
  if [ "${v% *}" -eq 1 ] && [ "${v#* }" -lt 15 ]; then
    echo "VAULT_BIN=$path is Vault ${v/ /.}: the suite is tested with 1.15 and later" >&2
  fi
  echo "$path"
  exit 0
fi

if [ -z "${VAULT_FORCE_BUILD:-}" ] && command -v vault >/dev/null 2>&1; then
  v=$(vault_minor vault)
  if [ -n "$asked_version" ]; then
    if vault version 2>/dev/null | grep -qE "^Vault v${asked_version//./\\.}([ ,+-]|$)"; then
      command -v vault
      exit 0
    fi
  elif [ -n "$v" ] && [ "${v% *}" -ge 1 ] && { [ "${v% *}" -gt 1 ] || [ "${v#* }" -ge 15 ]; }; then
    command -v vault
    exit 0
  fi
fi

if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi
# --cached: only a binary built before, never a build (scripts/compat.sh resumes with it).
if [ "${1:-}" = --cached ]; then exit 1; fi

echo "building Vault v$VAULT_VERSION into $bin (first run on this machine: ~20 minutes)" >&2
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/main.go" <<'GO'
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() { os.Exit(command.Run(os.Args[1:])) }
GO
vault_gomod=$(go list -m -f '{{.GoMod}}' "github.com/hashicorp/vault@v$VAULT_VERSION")
wrapper_gomod "$VAULT_VERSION" "$vault_gomod" >"$work/go.mod"
# Code written before Go 1.23 may reach into the runtime with go:linkname, which newer linkers
# refuse unless told not to check.
ldflags="-s -w"
if [ "$(go_minor "$vault_gomod")" -lt 23 ]; then ldflags="$ldflags -checklinkname=0"; fi
(
  cd "$work"
  GOFLAGS=-mod=mod go mod tidy >&2
  go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" . >&2
)
mv "$bin.tmp" "$bin"
"$bin" version >&2
echo "$bin"
