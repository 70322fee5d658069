#!/usr/bin/env bash
# Set up a virtualenv (if needed) and run the whole test suite: lint, types, then every test
# tier: offline (pure and simulator over loopback HTTPS), slow (fault matrix, soak), and the
# real IBKR gateway in front of the simulator (needs Java 17 and npm; fetched once into
# .cache/ibkr-gateway).
# Usage: scripts/test.sh [extra pytest args, applied to every tier]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,lint]"
echo "== ruff check";   .venv/bin/ruff check .
echo "== ruff format";  .venv/bin/ruff format --check .
echo "== mypy";         .venv/bin/mypy
pytest=(.venv/bin/pytest -q -p no:cacheprovider)
echo "== pytest: offline tiers"; "${pytest[@]}" -m "not gateway and not slow" "$@"
echo "== pytest: fault matrix and soak"; "${pytest[@]}" -m "slow and not gateway" "$@"
echo "== pytest: IBKR's real gateway"; "${pytest[@]}" -m "gateway" "$@"
