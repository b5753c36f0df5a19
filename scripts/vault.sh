#!/usr/bin/env bash
# Prints the path of a Vault binary the tests can use, building it if needed.
#
# A `vault` on PATH at >= 1.15 is used as is. Otherwise Vault $VAULT_VERSION is built from
# the Go module proxy through a small wrapper module (Vault's own go.mod replaces api/sdk with
# sub-folders that are not in the module download, so `go install` refuses it) and cached
# outside the repository, so only the first run on a machine pays for it (~20 min on 2 cores).
set -euo pipefail

VAULT_VERSION=${VAULT_VERSION:-1.21.0}
cache=${SESSIONTOKEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sessiontoken}
bin="$cache/vault-$VAULT_VERSION"

if [ -z "${VAULT_FORCE_BUILD:-}" ] && command -v vault >/dev/null 2>&1; then
  v=$(vault version 2>/dev/null | sed -n 's/^Vault v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
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
