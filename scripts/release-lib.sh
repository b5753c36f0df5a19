# Sourced by scripts/release.sh and scripts/release-check.sh: the one definition of how a
# release binary is built, so the reproducibility check tests exactly what `make release` ships.
# Run from the repository root.

PLUGIN_NAME=vault-plugin-secrets-sessiontoken
MODULE=github.com/sessiontoken/vault-plugin-secrets-sessiontoken
# The toolchain `make release` builds with (GOTOOLCHAIN: the go command fetches it from the Go
# module proxy when the local one differs). Byte-identical output across machines needs the same
# compiler; the check in `make test` compares two builds on one machine and uses the local Go.
RELEASE_GO=go1.26.8

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# release_version prints the VERSION file's version.
release_version() {
  local v
  [ -f VERSION ] || die "no VERSION file at the repository root"
  v=$(tr -d '[:space:]' <VERSION)
  # Vault refuses a -version that is not semantic, and its catalog sorts by it.
  [[ $v =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
    die "VERSION holds '$v': write a semantic version with a leading v, e.g. v0.2.0"
  echo "$v"
}

# check_tag refuses when HEAD carries version tags (v*) and none of them is the VERSION file's.
check_tag() {
  local tags
  git rev-parse --git-dir >/dev/null 2>&1 || return 0 # a source tarball: no tags to compare
  tags=$(git tag --points-at HEAD --list 'v*')
  [ -z "$tags" ] && return 0
  grep -qxF -- "$1" <<<"$tags" ||
    die "HEAD is tagged $(echo $tags) but VERSION says $1: make them agree before releasing"
}

# release_build GOOS GOARCH OUT VERSION builds the plugin from the current directory with the
# release flags. Every input that changes the bytes is fixed here: no cgo, no file-system paths
# (-trimpath), no VCS stamp (-buildvcs=false: a dirty flag or commit time would differ between
# checkouts), no build ID, no symbol tables, and the CPU baselines pinned (GOAMD64=v1,
# GOARM64=v8.0: the defaults today, pinned so an environment setting cannot change them).
release_build() {
  env CGO_ENABLED=0 GOOS="$1" GOARCH="$2" GOAMD64=v1 GOARM64=v8.0 GOFLAGS=-mod=readonly GOEXPERIMENT= \
    go build -trimpath -buildvcs=false \
    -ldflags "-s -w -buildid= -X $MODULE.Version=$4" \
    -o "$3" "./cmd/$PLUGIN_NAME"
}

# check_version_flag GOOS GOARCH BIN: fails unless BIN, built by release_build, differs from a
# build with another version. The linker ignores -X for a variable that does not exist, so a
# renamed package or Version var would otherwise ship binaries that report the default, and
# Vault refuses to register a -version the plugin does not report. (-trimpath keeps -ldflags
# out of `go version -m`, so the build info cannot tell.)
check_version_flag() {
  local other=$3.versioncheck
  release_build "$1" "$2" "$other" v0.0.0-versioncheck
  if cmp -s "$3" "$other"; then
    rm -f "$other"
    die "-X $MODULE.Version has no effect: is Version still a string variable in package $MODULE?"
  fi
  rm -f "$other"
}
