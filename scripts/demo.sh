#!/usr/bin/env bash
# Set up a virtualenv (if needed) and run the main job: a backtest from the bundled cassette,
# then a short live paper-trading run against the gateway simulator.
# Usage: scripts/demo.sh [extra 'ibkr-cp demo' args]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[demo]"
exec .venv/bin/ibkr-cp demo "$@"
