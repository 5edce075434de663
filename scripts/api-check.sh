#!/usr/bin/env bash
# The live service against its OpenAPI description (docs/openapi.json, served at
# /v1/openapi.json): schemathesis (PyPI, in a venv of the project's own) generates requests for
# every operation, valid and invalid, and fails on any 5xx, an undocumented status, content
# type or header, an answer that breaks its schema, invalid data accepted, or a route that
# works without a token, or a method a route does not take not answered 405. CI runs it after the
# tests (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
accel=${ACCEL:-build/accel}
venv=$(realpath -m "${API_VENV:-build/api-venv}")
examples=${1:-30}
[ -x "$accel" ] || { echo "api-check: no $accel; build first (./make.sh run)" >&2; exit 2; }

if [ ! -x "$venv/bin/schemathesis" ]; then
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "api-check: installing python3-venv (Debian's venv module)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv) >/dev/null
  fi
  echo "api-check: creating $venv with schemathesis from PyPI" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4,<5' >&2
fi
echo "api-check: $("$venv/bin/schemathesis" --version)" >&2

work=$(mktemp -d)
chmod 0711 "$work"  # tenants' uids pass through to their runtimes' folders
serve_pid=
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
# One free-tier user on a service whose accelerators cover every type the tier may ask for
# (t4 and v2-8), so that no valid request can find the service without the hardware (a 503 by
# design); the tier's limit of one runtime answers 429 before capacity runs out.
cat >"$work/config.json" <<'JSON'
{"discover_gpus": false, "allow_unisolated": true, "tick_s": 0.2, "database_reserve_mb": 1,
 "tenant_uid_first": 600000, "tenant_uid_count": 100,
 "simulated_devices": [{"type": "t4", "count": 2}, {"type": "v2-8", "count": 1}]}
JSON
token=$("$accel" admin user add fuzz --tier free --data-dir "$work/data" --config "$work/config.json" | grep -o 'acc_[A-Za-z0-9_-]*' | head -1)
"$accel" serve --config "$work/config.json" --data-dir "$work/data" --listen 127.0.0.1:0 \
  --port-file "$work/port" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
set +e
(cd "$work" && "$venv/bin/schemathesis" run "http://127.0.0.1:$port/v1/openapi.json" \
  --header "Authorization: Bearer $token" --checks all --max-examples "$examples" --workers 1 --seed "${API_CHECK_SEED:-1}" \
  --generation-database none --no-color ${API_CHECK_EXTRA:-} --request-timeout 10 --suppress-health-check too_slow)
status=$?
set -e
if grep -q "internal error" "$work/serve.log"; then
  echo "api-check: the service logged internal errors:" >&2
  grep "internal error" "$work/serve.log" | head -20 >&2
  status=1
fi
echo "api-check: schemathesis exit status $status" >&2
exit $status
