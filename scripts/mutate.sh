#!/usr/bin/env bash
# make mutate: mutation testing with gremlins over the backend package and upstream/, one
# package at a time (a mutant runs its own package's tests), then mutation/RESULTS.md with
# the date, each package's efficacy (killed / (killed + lived)) and every mutant that lived.
# Not part of CI: about an hour on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${GREMLINS_VERSION:-v0.6.0}
gremlins=$(command -v gremlins || true)
if [ -z "$gremlins" ]; then
  GOFLAGS= go install "github.com/go-gremlins/gremlins/cmd/gremlins@$version"
  gremlins="$(go env GOPATH)/bin/gremlins"
fi
out=${MUTATE_OUT:-mutation/RESULTS.md}
mkdir -p bin "$(dirname "$out")"

# Only the plugin's own code: the simulator, commands, benchmarks and tests are not mutated.
common=(-E '^sim/' -E '^cmd/' -E '^bench/' -E '^integration/' -E '_test\.go$'
  --workers "${MUTATE_WORKERS:-1}" --timeout-coefficient 5)
# MUTATE_SUMMARY_ONLY=1: write the results file from the last run's bin/mutate-*.json.
if [ -z "${MUTATE_SUMMARY_ONLY:-}" ]; then
  # The root package (the backend and its paths) and internal/gate, each with its own tests.
  "$gremlins" unleash "${common[@]}" -E '^upstream/' -E '^internal/(session|testclock)/' -o bin/mutate-backend.json . | tee bin/mutate-backend.log
  # internal/session: its rules are tested through the backend, by the root package's tests.
  # gremlins runs a mutant's own package's tests, or with --integration `go test ./...`; a
  # `go` in front of the real one narrows that to the root package and internal/session (the
  # other packages cannot see a mutant there), so that a mutant costs one package's run.
  mkdir -p bin/mutate-go
  cat > bin/mutate-go/go <<WRAP
#!/usr/bin/env bash
args=()
for a in "\$@"; do
  if [ "\$a" = "./..." ]; then args+=(. ./internal/session); else args+=("\$a"); fi
done
exec "$(command -v go)" "\${args[@]}"
WRAP
  chmod +x bin/mutate-go/go
  PATH="$PWD/bin/mutate-go:$PATH" "$gremlins" unleash "${common[@]}" --integration --coverpkg ./internal/session -E '^[^/]+\.go$' -E '^upstream/' -E '^internal/(gate|testclock)/' \
    -o bin/mutate-session.json . | tee bin/mutate-session.log
  "$gremlins" unleash "${common[@]}" -E '^[^/]+\.go$' -E '^internal/' -o bin/mutate-upstream.json . | tee bin/mutate-upstream.log
fi

python3 - "$out" "$(git rev-parse --short HEAD)" bin/mutate-backend.json bin/mutate-session.json bin/mutate-upstream.json <<'PY'
import json, sys, datetime, collections
out, commit, files = sys.argv[1], sys.argv[2], sys.argv[3:]
lines = [f"# Mutation testing", "",
         f"Written by `make mutate` (gremlins, default mutators) on {datetime.date.today()}, at commit {commit}.", "",
         "| package | killed | lived | timed out | not covered | efficacy |", "|---|---|---|---|---|---|"]
lived = []
for name, path in zip(["backend (root)", "internal/session", "upstream/"], files):
    c = collections.Counter()
    for f in json.load(open(path))["files"]:
        for m in f["mutations"]:
            c[m["status"]] += 1
            if m["status"] == "LIVED":
                lived.append(f"- `{f['file_name']}:{m['line']}:{m['column']}` {m['type']}")
    k, l = c["KILLED"], c["LIVED"]
    eff = 100 * k / (k + l) if k + l else 0
    lines.append(f"| {name} | {k} | {l} | {c['TIMED OUT']} | {c['NOT COVERED']} | {eff:.1f} % |")
lines += ["", "Mutants that lived (each is killed by a test since, or explained in mutation/EQUIVALENT.md). 'Not covered' are lines gremlins cannot attribute coverage to (constants, switch cases); EQUIVALENT.md says how those rules are tested:", ""] + (lived or ["- none"])
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
