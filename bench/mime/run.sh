#!/bin/sh
# Builds and runs the src/mime benchmark (see README.md). Not part of the default build.
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${BUILD:-/tmp/sarn-mime-bench}
mkdir -p "$out"
${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -g -I"$root/src" \
	"$here/mime-bench.c" "$root"/src/mime/*.c "$root/src/core/buf.c" -o "$out/mime-bench"
exec "$out/mime-bench" "${1:-$root/../shared/corpus/public}"
