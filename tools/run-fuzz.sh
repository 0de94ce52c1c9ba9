#!/bin/sh
# Runs every libFuzzer target in BUILD_DIR/fuzz for SECONDS each, seeded from fuzz/seeds/<target>
# (and the mail corpus for the MIME parser). Fails if any target finds a crash.
set -e
build=$1
seconds=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
for t in "$build"/fuzz/fuzz-*; do
	[ -f "$t" ] && [ -x "$t" ] || continue
	name=$(basename "$t")
	work=$(mktemp -d)
	# The session targets keep a store there (in memory when /dev/shm exists: it fsyncs).
	SARN_FUZZ_TMPDIR=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
	export SARN_FUZZ_TMPDIR
	seeds=""
	[ -d "$root/fuzz/seeds/$name" ] && seeds="$root/fuzz/seeds/$name"
	[ "$name" = fuzz-mime ] && [ -d "$root/../shared/corpus/public" ] && seeds="$seeds $root/../shared/corpus/public"
	echo "== $name ($seconds s)"
	if ! "$t" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$work/" "$work" $seeds 2>"$work/log"; then
		tail -50 "$work/log"
		status=1
	else
		grep -E "^(#[0-9]+ *DONE|Done)" "$work/log" | tail -1 || true
	fi
	rm -rf "$work" "$SARN_FUZZ_TMPDIR"
done
exit $status
