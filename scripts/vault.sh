#!/usr/bin/env bash
# Prints the path of a Vault binary the tests can use, building it if needed.
#
# VAULT_BIN, when set, wins (`make test VAULT_BIN=/path/to/vault`): a path or a command name,
# printed as an absolute path, since the suite links to it from another directory. Otherwise a
# `vault` on PATH at >= 1.15 is used as is, or else Vault $VAULT_VERSION is built from the Go
# module proxy through a small wrapper module (Vault's own go.mod replaces api/sdk with
# sub-folders that are not in the module download, so `go install` refuses it) and cached
# outside the repository, so only the first run on a machine pays for it (~20 min on 2 cores).
set -euo pipefail

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
  if [ -n "$v" ] && [ "${v% *}" -ge 1 ] && { [ "${v% *}" -gt 1 ] || [ "${v#* }" -ge 15 ]; }; then
    command -v vault
    exit 0
  fi
fi

if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi

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
cat >"$work/go.mod" <<MOD
module sessiontoken/vaultbuild

go 1.25

require github.com/hashicorp/vault v$VAULT_VERSION

replace (
	github.com/hashicorp/vault/sdk => github.com/hashicorp/vault/sdk v0.20.0
	github.com/hashicorp/vault/api => github.com/hashicorp/vault/api v1.22.0
	github.com/99designs/keyring => github.com/Jeffail/keyring v1.2.3
	github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1
)
MOD
(
  cd "$work"
  GOFLAGS=-mod=mod go mod tidy >&2
  go build -trimpath -ldflags "-s -w" -o "$bin.tmp" . >&2
)
mv "$bin.tmp" "$bin"
"$bin" version >&2
echo "$bin"
