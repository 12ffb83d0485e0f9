#!/usr/bin/env bash
# Creates .venv and installs lipsync-api into it (add --dev for the test tools). Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".${extras}"
# mediapipe's wheel pins jax/opencv-contrib it never imports on our path; its real imports are in pyproject.
.venv/bin/python -m pip install --quiet --no-deps -c constraints.txt mediapipe==0.10.21
.venv/bin/python -c "import av, cv2, mediapipe, numpy; print('lipsync-api installed: av', av.__version__, '| numpy', numpy.__version__)"
