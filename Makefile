# Convenience wrapper around Meson. `make run` and `make test` are the README's quick start.
BUILD ?= build
PYTEST = /usr/bin/python3 -m pytest

.PHONY: all deps test-deps build run test unit proto reliability asan fuzz clean

all: build

deps:
	./tools/install-deps.sh

test-deps:
	./tools/install-deps.sh --test

build:
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD)
	ninja -C $(BUILD)

run: deps build
	./$(BUILD)/sarn serve

unit: build
	meson test -C $(BUILD) --print-errorlogs

proto: build
	SARN_BIN=$(CURDIR)/$(BUILD)/sarn SARN_BUILD=$(CURDIR)/$(BUILD) $(PYTEST) -q -p no:cacheprovider tests/proto tests/interop

# Fault and load suites: SIGKILL under mixed load, a full disk, vanishing and stalled clients,
# thousands of connections (docs/RELIABILITY.md). Needs root for the tmpfs of the disk-full test.
reliability: build
	SARN_BIN=$(CURDIR)/$(BUILD)/sarn SARN_BUILD=$(CURDIR)/$(BUILD) $(PYTEST) -q -p no:cacheprovider tests/reliability

test: test-deps build unit proto

# The same suites under AddressSanitizer + UndefinedBehaviorSanitizer (clang).
asan:
	@[ -f build-asan/build.ninja ] || CC=clang meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
	ninja -C build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 meson test -C build-asan --print-errorlogs
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 SARN_BIN=$(CURDIR)/build-asan/sarn SARN_BUILD=$(CURDIR)/build-asan $(PYTEST) -q -p no:cacheprovider tests/proto tests/interop

# Short libFuzzer runs of every target (FUZZ_SECONDS each).
FUZZ_SECONDS ?= 30
fuzz:
	@[ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C build-fuzz
	./tools/run-fuzz.sh build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
