#!/usr/bin/env bash
# PostgreSQL 15, Mosquitto and Redis from Debian's packages, for the connector tests
# (tests/services/{postgres,mosquitto,redis}.py start their own servers on free loopback ports in
# temporary directories; the packages' system services are not used).
set -euo pipefail
missing=()
[ -x /usr/lib/postgresql/15/bin/pg_ctl ] || missing+=(postgresql-15)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d: never start the packages' own system services while installing them.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
if ! apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; then
    # the package lists may be missing or stale: refresh them only now
    apt-get update -q >/dev/null
    apt-get install -y -q "${missing[@]}" >/dev/null
fi
echo "10-services: installed ${missing[*]}"
