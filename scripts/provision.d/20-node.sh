#!/usr/bin/env bash
# The Node test harness (tests/js): @microsoft/signalr, its MessagePack protocol and playwright-core,
# exactly as pinned in tests/js/package-lock.json. Uses the npm cache (~/.npm), so it works offline
# once the cache holds them.
set -euo pipefail
cd "$(dirname "$0")/../../tests/js"
if ! command -v node >/dev/null; then
    echo "node is missing: the tests need Node 20 or newer" >&2
    exit 1
fi
node -e 'if (+process.versions.node.split(".")[0] < 20) { console.error("Node >= 20 needed, got " + process.version); process.exit(1) }'
# skip the install when node_modules already matches the lock file
if [ -f node_modules/.package-lock.json ] && cmp -s package-lock.json .installed-lock.json; then
    exit 0
fi
npm ci --prefer-offline --no-audit --no-fund --loglevel=error
cp package-lock.json .installed-lock.json
