#!/usr/bin/env bash
# `make dev`: the simulator, a Vault dev server with the plugin registered by sha256 and
# version, mounts at plextrac/, plaspy/ and resolver/ configured against the simulator, and
# a token read from each. Ctrl-C stops everything it started; a rerun cleans up leftovers.
set -euo pipefail
cd "$(dirname "$0")/.."

VAULT_BIN=$(scripts/vault.sh) # honours a VAULT_BIN you set, as an absolute path (it is linked)
# The version `make build` bakes into bin/: Vault refuses a -version the plugin does not report.
PLUGIN_VERSION=${PLUGIN_VERSION:-$(cat VERSION)}
VAULT_PORT=${DEV_VAULT_PORT:-8200}
SIM_PORT=${DEV_SIM_PORT:-8210}
dir=${TMPDIR:-/tmp}/sessiontoken-dev
export VAULT_ADDR=http://127.0.0.1:$VAULT_PORT VAULT_TOKEN=root

# Stop what an earlier run left behind.
for pidfile in "$dir"/*.pid; do
  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
done
rm -rf "$dir" && mkdir -p "$dir/plugins" "$dir/bin"
ln -s "$VAULT_BIN" "$dir/bin/vault"
export PATH="$dir/bin:$PATH"

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping Vault and the simulator"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -f "$dir"/*.pid
}
trap cleanup INT TERM EXIT

wait_for() { # seconds, command...
  local n=$(( $1 * 10 )); shift
  until "$@" >/dev/null 2>&1; do
    n=$((n - 1)); [ "$n" -gt 0 ] || { echo "timed out waiting for: $*" >&2; return 1; }
    sleep 0.1
  done
}

bin/upstream-sim -listen "127.0.0.1:$SIM_PORT" >"$dir/sim.log" 2>&1 &
pids+=($!); echo $! >"$dir/sim.pid"
SIM=http://127.0.0.1:$SIM_PORT
wait_for 10 curl -sf "$SIM/api/v1/"

echo "plugin_directory = \"$dir/plugins\"" >"$dir/vault.hcl"
vault server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$VAULT_PORT" \
  -config="$dir/vault.hcl" >"$dir/vault.log" 2>&1 &
pids+=($!); echo $! >"$dir/vault.pid"
wait_for 60 vault status

cp bin/vault-plugin-secrets-sessiontoken "$dir/plugins/"
sha=$(sha256sum "$dir/plugins/vault-plugin-secrets-sessiontoken" | cut -d' ' -f1)
vault plugin register -sha256="$sha" -command=vault-plugin-secrets-sessiontoken \
  -version="$PLUGIN_VERSION" secret sessiontoken
for m in plextrac plaspy resolver; do vault secrets enable -path=$m sessiontoken; done

vault write plextrac/config provider=plextrac url="$SIM" allow_insecure_http=true \
  username=svc-ci@acme.com password=plextrac-demo-pass totp_secret=JBSWY3DPEHPK3PXP
vault write plaspy/config provider=plaspy url="$SIM" allow_insecure_http=true \
  username=svc-plaspy api_key=plaspy-demo-key-0123456789
vault write resolver/config provider=resolver url="$SIM" allow_insecure_http=true \
  email=svc@acme.com password=resolver-demo-pass org_id=42

for m in plextrac plaspy resolver; do
  echo; echo "\$ vault read $m/token"
  vault read "$m/token"
done

cat <<MSG

Ready. In another shell:

  export VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=root
  export PATH="$dir/bin:\$PATH"          # the vault binary this used
  vault read plextrac/token                # the shared PlexTrac token as a lease
  vault read -field=token plextrac/token   # just the token, for scripts
  vault lease renew <lease_id>             # in the token's last third: the refreshed token
  vault read plextrac/status               # session state and upstream call counts
  vault read plextrac/config               # secrets show as *_set only
  curl -s -H "Authorization: \$(vault read -field=token plextrac/token)" $SIM/api/v1/whoami

The simulator (PlexTrac, Plaspy, Resolver) is at $SIM; its counters: curl -s $SIM/_sim/stats
Logs: $dir/vault.log, $dir/sim.log. Ctrl-C stops Vault and the simulator.
MSG
wait
