#!/usr/bin/env bash
# make release: dist/ with the plugin for every platform we ship, named
# vault-plugin-secrets-sessiontoken_<version>_<os>_<arch>, LICENSE and THIRD_PARTY_NOTICES.md,
# dist/SHA256SUMS over them (the format `sha256sum -c` reads) and, when SIGN_KEY names a gpg
# key, dist/SHA256SUMS.sig (a detached signature). The builds are reproducible: see
# release_build in scripts/release-lib.sh.
#
#   make release                       # unsigned
#   make release SIGN_KEY=<key id>     # signed; GNUPGHOME selects the keyring as usual
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/release-lib.sh

PLATFORMS="linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 freebsd/amd64"

version=$(release_version)
# VERSION from make or the environment must agree: binaries that say one version beside a
# VERSION file that says another could not be rebuilt from the tag.
if [ -n "${VERSION:-}" ] && [ "$VERSION" != "$version" ]; then
  die "VERSION=$VERSION but the VERSION file says $version: releases take the version from the file; edit it"
fi
check_tag "$version"
# Uncommitted changes would ship bytes that no commit reproduces.
if [ -z "${RELEASE_ALLOW_DIRTY:-}" ] && git rev-parse --git-dir >/dev/null 2>&1 &&
  [ -n "$(git status --porcelain --untracked-files=normal)" ]; then
  die "the work tree has uncommitted changes (git status): commit them, or RELEASE_ALLOW_DIRTY=1 for a local try"
fi
export GOTOOLCHAIN=${RELEASE_GOTOOLCHAIN:-$RELEASE_GO}
echo "release $version with $(go version) at commit $(git rev-parse --short HEAD 2>/dev/null || echo '(no git)')"

# Build into a fresh directory and swap it in at the end: a failed run leaves no dist/ that
# looks complete.
rm -rf dist.tmp && mkdir dist.tmp
trap 'rm -rf dist.tmp' EXIT
for p in $PLATFORMS; do
  name=${PLUGIN_NAME}_${version}_${p%/*}_${p#*/}
  echo "  $name"
  release_build "${p%/*}" "${p#*/}" "dist.tmp/$name" "$version"
done
check_version_flag linux amd64 "dist.tmp/${PLUGIN_NAME}_${version}_linux_amd64"
# The plugin's license and the licenses of what the binaries contain ship beside them.
cp LICENSE THIRD_PARTY_NOTICES.md dist.tmp/
(cd dist.tmp && sha256sum "${PLUGIN_NAME}_${version}"_* LICENSE THIRD_PARTY_NOTICES.md >SHA256SUMS)

if [ -n "${SIGN_KEY:-}" ]; then
  gpg --batch --yes --local-user "$SIGN_KEY" --detach-sign --output dist.tmp/SHA256SUMS.sig dist.tmp/SHA256SUMS
  gpg --batch --verify dist.tmp/SHA256SUMS.sig dist.tmp/SHA256SUMS 2>/dev/null ||
    die "the signature made with SIGN_KEY=$SIGN_KEY does not verify"
fi

rm -rf dist && mv dist.tmp dist
trap - EXIT
(cd dist && sha256sum -c --quiet SHA256SUMS)
echo "dist/:"; ls -l dist
