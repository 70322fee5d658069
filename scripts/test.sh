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
# Every tier runs even when one before it failed (a failing tier must not hide another);
# the exit status is non-zero when any failed.
pytest=(.venv/bin/pytest -q -p no:cacheprovider)
failed=()
tier() {
  local name=$1 marks=$2
  shift 2
  echo "== pytest: $name"
  "${pytest[@]}" -m "$marks" "$@" || failed+=("$name")
}
tier "offline tiers" "not gateway and not slow" "$@"
tier "fault matrix and soak" "slow and not gateway" "$@"
tier "IBKR's real gateway" "gateway" "$@"
if [ ${#failed[@]} -gt 0 ]; then
  echo "== failed tiers: ${failed[*]}"
  exit 1
fi
echo "== every tier passed"
