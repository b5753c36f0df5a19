#!/usr/bin/env bash
# make release-check (part of make test): builds the plugin twice for this machine with the
# release flags, from two copies of the work tree at different paths, and fails unless the two
# binaries are byte-identical. One platform and the plugin only: `make release` builds the five.
#
# By default both builds share the Go build cache, which keeps the check to seconds. With
# -trimpath the cache key leaves the directory out, so the second build links the first one's
# objects: this proves the link and the flags deterministic and path-free (drop -trimpath and
# both copies compile afresh, embed their paths and differ). RELEASE_CHECK_COLD=1 gives the second
# build an empty cache, so every package is compiled again from scratch (minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/release-lib.sh

# The tag must match the VERSION file (checked here too, so CI on a tagged commit catches it);
# the build uses VERSION from make when set (make test VERSION=...), as the other targets do.
check_tag "$(release_version)"
version=${VERSION:-$(release_version)}

tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
one=$tmp/a
two=$tmp/second-copy/at/another/depth

# copy_tree DEST: the files git would see (tracked and untracked-but-not-ignored, as they are on
# disk now), or everything but build output outside a git checkout.
copy_tree() {
  mkdir -p "$1"
  if git rev-parse --git-dir >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
      tar --null -T - -cf - | tar -C "$1" -xf -
  else
    tar --exclude=./bin --exclude=./dist --exclude=./.git -cf - . | tar -C "$1" -xf -
  fi
}
copy_tree "$one"
copy_tree "$two"

os=$(go env GOHOSTOS) arch=$(go env GOHOSTARCH)
(cd "$one" && release_build "$os" "$arch" "$tmp/plugin-1" "$version")
if [ -n "${RELEASE_CHECK_COLD:-}" ]; then
  (cd "$two" && GOCACHE=$tmp/gocache release_build "$os" "$arch" "$tmp/plugin-2" "$version")
else
  (cd "$two" && release_build "$os" "$arch" "$tmp/plugin-2" "$version")
fi

if ! cmp "$tmp/plugin-1" "$tmp/plugin-2"; then
  {
    echo
    echo "NOT REPRODUCIBLE: two builds of the same tree ($os/$arch, $(go version)) differ:"
    sha256sum "$tmp/plugin-1" "$tmp/plugin-2"
    echo "Check release_build in scripts/release-lib.sh (-trimpath, -buildvcs=false, -buildid=)."
  } >&2
  exit 1
fi
check_version_flag "$os" "$arch" "$tmp/plugin-1"
echo "release-check: $os/$arch $version built twice in two directories${RELEASE_CHECK_COLD:+ (second with an empty cache)}: identical ($(sha256sum <"$tmp/plugin-1" | cut -c1-16)…)"
