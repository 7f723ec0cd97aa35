#!/usr/bin/env bash
# One command to set everything up on a fresh machine: ExifTool (Debian package, where we are root),
# a virtual environment in .venv, torch 2.13.0 (CPU wheel), then exiflang with its dependencies.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

if ! command -v exiftool >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing ExifTool (libimage-exiftool-perl)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libimage-exiftool-perl >/dev/null) \
            || echo "setup: ExifTool could not be installed; exiflang will fall back to its in-process reader"
    else
        echo "setup: ExifTool not found and not root; exiflang will fall back to its in-process reader"
    fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>/dev/null || true
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[dev]'
echo "setup: done. Activate with: source .venv/bin/activate"
