#!/usr/bin/env bash
# Headless Chromium for the browser tests (tests/gateway/signalr/test_browser.py), from Debian's packages.
# Playwright never downloads a browser here: tests/js uses playwright-core with /usr/bin/chromium.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q chromium >/dev/null 2>&1; then
    # the package lists may be missing or stale: refresh them only now
    apt-get update -q >/dev/null
    apt-get install -y -q chromium >/dev/null
fi
/usr/bin/chromium --version
