#!/usr/bin/env bash
# Installs what the tests need on a Debian machine, each only when it is missing:
# PostgreSQL 15 (the store tests start their own server on loopback), its client tools
# (`db sync`), Node.js and the fake TimescaleDB's packages, Chromium and the browser test's
# packages, the zstd CLI, promtool, systemd-analyze.
# Run by `make test` (and so by .ci/run); apt-get runs through sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
updated=""
apt_install() {
  if [ -z "$updated" ]; then
    $SUDO apt-get update -qq
    updated=1
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
# Packages whose own server would start on install (postgresql, prometheus): keep it from
# starting; the tests start their own.
no_services() {
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
}

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  no_services
  apt_install postgresql-15
fi
if ! command -v pg_dump >/dev/null 2>&1 || ! command -v pg_restore >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
  apt_install postgresql-client
fi
# Node.js for the TimescaleDB tests' server (crates/store/fake-timescale: the timescaledb
# extension in PGlite's WASM PostgreSQL; no TimescaleDB package is reachable from Debian).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
# `npm ci` reinstalls from scratch: only when the lock file is newer than the install.
if [ ! -f crates/store/fake-timescale/node_modules/.package-lock.json ] \
  || [ crates/store/fake-timescale/package-lock.json -nt crates/store/fake-timescale/node_modules/.package-lock.json ]; then
  echo "== npm ci (crates/store/fake-timescale)"
  (cd crates/store/fake-timescale && npm ci --no-audit --no-fund --loglevel=error)
fi
# Debian's Chromium, driven headless by the dashboard test (crates/cli/tests/dashboard.rs)
# through playwright-core, which downloads no browser of its own.
if [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi
if [ ! -f tools/browser/node_modules/.package-lock.json ] \
  || [ tools/browser/package-lock.json -nt tools/browser/node_modules/.package-lock.json ]; then
  echo "== npm ci (tools/browser)"
  (cd tools/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
# The archive's compression tests check that a compressed file decompresses with the zstd
# CLI to the original bytes.
if ! command -v zstd >/dev/null 2>&1; then
  apt_install zstd
fi
# promtool (Debian's prometheus package): the alert rules, their unit tests, the /metrics lint.
if ! command -v promtool >/dev/null 2>&1; then
  no_services
  apt_install prometheus
fi
# systemd-analyze (Debian's systemd package): `verify` of deploy/systemd's unit file
# (crates/cli/tests/service.rs). It needs no systemd running as PID 1.
if ! command -v systemd-analyze >/dev/null 2>&1; then
  no_services
  apt_install systemd
fi
# schemathesis (PyPI) in its own venv, pinned: crates/cli/tests/schemathesis.rs runs it against
# `stock-observer serve`. Reinstalled only when the venv is missing or holds another version.
ST_VERSION=4.32.5
ST_VENV=tools/schemathesis/.venv
if ! "$ST_VENV/bin/st" --version 2>/dev/null | grep -q "version $ST_VERSION\$"; then
  echo "== schemathesis $ST_VERSION into $ST_VENV"
  rm -rf "$ST_VENV"
  if ! python3 -m venv "$ST_VENV" 2>/dev/null; then
    apt_install python3-venv
    python3 -m venv "$ST_VENV"
  fi
  "$ST_VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi
