#!/usr/bin/env bash
# Build the OTLP benchmark peer (an OpenTelemetry Collector with the OTLP receiver and the
# nop exporter) into bench/out/otelcol-hutch-bench, from the Go module proxy.
#
# Exit status: 0 built (or already up to date), 3 Go is not installed, other: build failed.
# Run it:  PORT=4318 bench/out/otelcol-hutch-bench --config bench/collector/config.yaml
set -euo pipefail

BUILDER_VERSION=v0.165.0   # keep in step with the component versions in builder-config.yaml

here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$here/.." && pwd)/out
binary="$out/otelcol-hutch-bench"

if ! command -v go >/dev/null 2>&1; then
    echo "bench/collector/build.sh: Go is not installed, so the Collector peer cannot be built;" >&2
    echo "install Go 1.26 or newer (what Collector v0.165.0 needs) and run this again." >&2
    exit 3
fi

if [[ -x "$binary" && "$binary" -nt "$here/builder-config.yaml" && "$binary" -nt "$0" ]]; then
    echo "$binary is up to date"
    exit 0
fi

builder="$(go env GOPATH)/bin/builder"
if ! "$builder" version 2>/dev/null | grep -q "${BUILDER_VERSION}"; then
    echo "installing the OpenTelemetry Collector Builder ${BUILDER_VERSION}"
    go install "go.opentelemetry.io/collector/cmd/builder@${BUILDER_VERSION}"
fi

mkdir -p "$out"
cd "$out"   # output_path in the manifest is relative to here
"$builder" --config "$here/builder-config.yaml"
cp otelcol-hutch-bench-src/otelcol-hutch-bench "$binary"
echo "built $binary"
