#!/usr/bin/env bash
# One command to set everything up on a fresh machine: Debian packages where we are root (ExifTool; Chromium and
# chromium-driver for the browser tests), a virtual environment in .venv, torch 2.13.0 (CPU wheel), then exiflang
# with its dependencies.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

APT_UPDATED=""
# apt_install PACKAGE...: install Debian packages when we are root and apt-get exists (status 1 otherwise);
# `apt-get update` runs once per set-up.
apt_install() {
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
    echo "setup: apt-get install $*"
    if [ -z "$APT_UPDATED" ]; then
        apt-get update -qq || return 1
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v exiftool >/dev/null 2>&1; then
    apt_install libimage-exiftool-perl \
        || echo "setup: ExifTool could not be installed (not root, or no apt-get); exiflang will fall back to its in-process reader"
fi

# Chromium and its WebDriver for the headless-browser tests of the HTML report and of `exiflang serve`;
# those tests skip with a message where no browser could be installed.
if ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
    apt_install chromium chromium-driver \
        || echo "setup: Chromium could not be installed (not root, or no apt-get); the browser tests will be skipped"
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>/dev/null || true
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[dev]'
echo "setup: done. Activate with: source .venv/bin/activate"
