#!/bin/sh
# Builds the signpost binary the image ships: static (no cgo), stripped of
# local paths, version stamped. The Dockerfile runs this script, and so does
# deploy's test, so the image's build step is exercised without a container
# engine. Usage: deploy/build.sh OUTPUT [VERSION]
set -eu
out=${1:?usage: build.sh OUTPUT [VERSION]}
version=${2:-dev}
cd "$(dirname "$0")/.."
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${version}" -o "$out" ./cmd/signpost
