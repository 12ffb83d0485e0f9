#!/usr/bin/env bash
# Installs everything the tests need (from scratch on a fresh machine) and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v espeak-ng >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq espeak-ng) >/dev/null 2>&1 || echo "espeak-ng unavailable: its tests will skip"
fi
bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest "$@"
