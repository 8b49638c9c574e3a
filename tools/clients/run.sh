#!/usr/bin/env bash
# Runs pyupbit, python-kis and cryptofeed against `stock-observer sim`, telling them only
# the sim's printed base URLs and a KIS app key / secret pair of their own.
#
#   tools/clients/run.sh [path/to/stock-observer]
#
# The clients live in a venv (CLIENTS_VENV, default /tmp/clients-venv), created with
# `pip install pyupbit python-kis cryptofeed` when missing. Not part of CI (network for pip).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target/debug/stock-observer}
venv=${CLIENTS_VENV:-/tmp/clients-venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q pyupbit python-kis cryptofeed
fi
py="$venv/bin/python"

# A KIS-shaped pair (36-character key, 180-character secret): the sim accepts the pair in
# the environment, as KIS accepts the pair it issued.
KIS_APP_KEY=$("$py" -c 'import secrets,string; a=string.ascii_letters+string.digits; print("PS"+"".join(secrets.choice(a) for _ in range(34)))')
KIS_APP_SECRET=$("$py" -c 'import secrets,string; a=string.ascii_letters+string.digits+"+/"; print("".join(secrets.choice(a) for _ in range(180)))')
export KIS_APP_KEY KIS_APP_SECRET

out=$(mktemp)
"$bin" sim >"$out" 2>/dev/null &
sim=$!
trap 'kill $sim 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do
    grep -q '^simulated market' "$out" && break
    sleep 0.2
done
cat "$out"
SIM_KIS_REST=$(awk '$1 == "KIS" && $2 == "REST" {print $3}' "$out")
SIM_KIS_WS=$(awk '$1 == "KIS" && $2 == "REST" {print $5}' "$out")
SIM_UPBIT_REST=$(awk '$1 == "Upbit" && $2 == "REST" {print $3}' "$out")
SIM_UPBIT_WS=$(awk '$1 == "Upbit" && $2 == "REST" {print $5}' "$out")
export SIM_KIS_REST SIM_KIS_WS SIM_UPBIT_REST SIM_UPBIT_WS

status=0
"$py" "$here/pyupbit_client.py" || status=1
"$py" "$here/pykis_client.py" || status=1
"$py" "$here/cryptofeed_client.py" || status=1
exit $status
