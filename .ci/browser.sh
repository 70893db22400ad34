#!/usr/bin/env bash
# Makes sure the browser tests can run: Debian's Chromium (never a downloaded browser), Node.js
# with npm, and playwright-core from e2e/package-lock.json. Exits non-zero, naming what is
# missing, when one cannot be had: the browser test would fail anyway, with a less clear message.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "cannot install $* here (no apt-get): install it and run again" >&2
    exit 1
  fi
  echo "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

[ -x /usr/bin/chromium ] || apt_install chromium
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm

/usr/bin/chromium --version
echo "node $(node --version)"
npm ci --prefix e2e --no-audit --no-fund --loglevel=error
