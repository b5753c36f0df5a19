#!/usr/bin/env bash
# Prints where the Terraform round-trip test finds its client: the pinned OpenTofu and a
# filesystem mirror holding the pinned hashicorp/vault provider, as two lines
#   TOFU_BIN=<path>
#   TOFU_MIRROR=<path>
# (shell-quoted, for eval), building what is missing.
#
# Always the pinned OpenTofu, never a `terraform` or `tofu` on PATH: the docs are proved against
# one known client. TOFU_BIN, when set, wins (a path or a command name, printed absolute). Both
# are built from the Go module proxy through small wrapper modules (OpenTofu's go.mod has a
# `replace`, which makes `go install` refuse it; the wrapper copies it) and cached outside the
# repository, next to the Vault binary, so only the first run on a machine pays for them. The
# builds use the Vault build's flags (-trimpath), so packages they share come from Go's build cache.
set -euo pipefail

TOFU_VERSION=1.12.6
# terraform-provider-vault's module path kept v1 while the provider's releases went on: this
# commit is provider v5.9.0 (its CHANGELOG's last release).
PROVIDER_VERSION=5.9.0
PROVIDER_MODULE_VERSION=v1.9.1-0.20260422134934-5e9fcd457a99
cache=${SESSIONTOKEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sessiontoken}
tofu="$cache/tofu-$TOFU_VERSION"
mirror="$cache/tofu-mirror"
# The unpacked layout OpenTofu reads: source "hashicorp/vault" means registry.opentofu.org/hashicorp/vault.
provider_dir="$mirror/registry.opentofu.org/hashicorp/vault/$PROVIDER_VERSION/$(go env GOOS)_$(go env GOARCH)"
provider="$provider_dir/terraform-provider-vault_v$PROVIDER_VERSION"

# build OUT MODULE@VERSION PACKAGE LDFLAGS [REPLACE...]: builds PACKAGE (a main package of MODULE)
# into OUT through a throwaway wrapper module carrying the REPLACE lines, and says how long it took.
build() {
  local out=$1 modver=$2 pkg=$3 ldflags=$4 work start=$SECONDS
  shift 4
  echo "building $pkg ($modver) into $out" >&2
  work=$(mktemp -d)
  printf 'module sessiontoken/toolbuild\n\ngo 1.26\n' >"$work/go.mod"
  for r in "$@"; do printf 'replace %s\n' "$r" >>"$work/go.mod"; done
  (
    cd "$work"
    export GOFLAGS=-mod=mod
    go get "$pkg@${modver#*@}" >&2
    go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg" >&2
  )
  rm -rf "$work"
  mv "$out.tmp" "$out"
  echo "built $out in $((SECONDS - start)) s" >&2
}

if [ -n "${TOFU_BIN:-}" ]; then
  path=$(command -v -- "$TOFU_BIN") ||
    { echo "TOFU_BIN=$TOFU_BIN: not an executable file nor a command on PATH" >&2; exit 1; }
  case $path in /*) ;; *) path=$PWD/$path ;; esac
  tofu=$path
elif ! { [ -x "$tofu" ] && "$tofu" version >/dev/null 2>&1; }; then
  mkdir -p "$cache"
  # dev=no: the version reads 1.12.6, not 1.12.6-dev.
  build "$tofu" "github.com/opentofu/opentofu@v$TOFU_VERSION" github.com/opentofu/opentofu/cmd/tofu \
    "-X github.com/opentofu/opentofu/version.dev=no" \
    "github.com/hashicorp/hcl/v2 v2.20.1 => github.com/opentofu/hcl/v2 v2.20.2-0.20251021132045-587d123c2828"
fi

if [ ! -x "$provider" ]; then
  mkdir -p "$provider_dir"
  build "$provider" "github.com/hashicorp/terraform-provider-vault@$PROVIDER_MODULE_VERSION" \
    github.com/hashicorp/terraform-provider-vault ""
fi

printf 'TOFU_BIN=%q\nTOFU_MIRROR=%q\n' "$tofu" "$mirror"
