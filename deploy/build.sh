#!/bin/sh
# Builds the signpost binary the image ships: static (no cgo), stripped of
# local paths. The Dockerfile runs this script, and so does deploy's test,
# so the image's build step is exercised without a container engine.
# Usage: deploy/build.sh OUTPUT [VERSION]
#
# signpost version names the build: VERSION when given, else the git
# revision Go records from the checkout (-buildvcs; the Docker build context
# includes .git for this), with -dirty for uncommitted changes.
# -buildvcs=auto is given so that a GOFLAGS=-buildvcs=false on the build
# machine does not drop it; it records nothing, without failing, where there
# is no repository.
set -eu
out=${1:?usage: build.sh OUTPUT [VERSION]}
version=${2:-}
cd "$(dirname "$0")/.."
ldflags="-s -w"
if [ -n "$version" ] && [ "$version" != dev ]; then
  ldflags="$ldflags -X main.version=${version}"
fi
CGO_ENABLED=0 go build -trimpath -buildvcs=auto -ldflags "$ldflags" -o "$out" ./cmd/signpost
