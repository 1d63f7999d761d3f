#!/usr/bin/env bash
# Resolve the jars of a single-node Apache Kafka broker (KRaft) from Maven Central into a cached
# libs dir, for tests/services/kafka.py. Versions live in scripts/kafka/pom.xml. Idempotent: a
# libs dir with its .complete marker is left alone. Needs Java 17+ and Maven (jars cached in ~/.m2).
set -euo pipefail
here="$(cd "$(dirname "$0")/../kafka" && pwd)"
pom="$here/pom.xml"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")"
libs="${STREAMPORT_KAFKA_LIBS:-$HOME/.cache/streamport/kafka-$version/libs}"

if [ -f "$libs/.complete" ]; then
    exit 0
fi
command -v java >/dev/null || { echo "30-kafka: java (17+) is not installed" >&2; exit 1; }
command -v mvn >/dev/null || { echo "30-kafka: mvn is not installed" >&2; exit 1; }

parent="$(dirname "$libs")"
mkdir -p "$parent"
tmp="$(mktemp -d "$parent/.resolve.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
if ! mvn -q -B -f "$pom" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1; then
    tail -40 "$tmp/mvn.log" >&2
    echo "30-kafka: could not resolve kafka_2.13:$version (see above)" >&2
    exit 1
fi
touch "$tmp/libs/.complete"
rm -rf "$libs"
mv "$tmp/libs" "$libs"
echo "30-kafka: Kafka $version jars in $libs"
