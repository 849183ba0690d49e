#!/usr/bin/env bash
# Make sure Debian's headless-capable Chromium is at /usr/bin/chromium (the report's browser
# test opens the rendered HTML in it). Idempotent: does nothing when it is already there.
# Installs with apt-get as root, non-interactively; exits non-zero with the reason otherwise.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "ensure-chromium: $CHROMIUM is present ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi

fail() {
    echo "ensure-chromium: $*" >&2
    exit 1
}

command -v apt-get >/dev/null 2>&1 \
    || fail "$CHROMIUM is missing and apt-get is not available; install Chromium by hand."
if [ "$(id -u)" -ne 0 ]; then
    fail "$CHROMIUM is missing and installing it needs root; run: sudo $0"
fi

export DEBIAN_FRONTEND=noninteractive
echo "ensure-chromium: $CHROMIUM is missing; running apt-get update"
apt-get update -q || fail "apt-get update failed; check the Debian package sources."
echo "ensure-chromium: installing Debian's chromium package"
apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core \
    || fail "apt-get install chromium failed; see the messages above."

[ -x "$CHROMIUM" ] || fail "apt-get finished but $CHROMIUM is still missing."
echo "ensure-chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
