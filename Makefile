# Thin wrapper over CMake. The two commands of the README: `make demo`, `make test`.
# Only `make deps` installs packages (and demo and test, which call it);
# `make`, `make install` and `make deb` never do. PREFIX and DESTDIR are
# honoured by install: `make install PREFIX=/usr DESTDIR=/tmp/stage`.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
WERROR     := $(if $(SNAPFS_WERROR),ON,OFF)
CTEST_ARGS ?= --output-on-failure --timeout 600
PREFIX     ?= /usr/local

.PHONY: all deps build build-asan demo test test-fast test-asan check-long check-tsan fuzz bench install deb clean format-check

all: build

deps:
	@scripts/deps.sh

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSNAPFS_WERROR=$(WERROR) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSNAPFS_SANITIZE=ON -DSNAPFS_WERROR=$(WERROR) >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

# Builds only what it runs (the daemon and snapctl), quietly.
demo: deps
	@scripts/demo.sh $(BUILD)

# Every suite in the normal build, then again under ASan+UBSan.
test: test-fast test-asan

test-fast: deps build
	@echo "== tests ($(BUILD)) =="
	@ctest --test-dir $(BUILD) $(CTEST_ARGS)

test-asan: deps build-asan
	@echo "== tests under ASan+UBSan ($(ASAN_BUILD)) =="
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --test-dir $(ASAN_BUILD) $(CTEST_ARGS)

# Longer randomized runs and soaks: more seeds and steps; the backing
# matrix (test/backing, docs/BACKINGS.md): the suites with SOURCE on ext4, XFS
# and btrfs loop images, sshfs and GlusterFS, the store beside it or not;
# then the fuzzers (`make fuzz`).
check-long: build
	@SNAPFS_LONG=1 ctest --test-dir $(BUILD) $(CTEST_ARGS)
	@$(MAKE) --no-print-directory fuzz

# The libFuzzer targets (fuzz/, built with clang apart from CMake), each
# FUZZ_SECONDS against the daemon of $(BUILD); any crash fails. Root only
# (fuzz_ctl and fuzz_side mount). FUZZ_BIN=build-asan/src/fuse/snapfs (after
# `make build-asan`) fuzzes the sanitizer build of the daemon instead.
FUZZ_SECONDS ?= 60
FUZZ_BIN     ?= $(BUILD)/src/fuse/snapfs
fuzz: build
	@$(MAKE) --no-print-directory -C fuzz run OUT=$(abspath build-fuzz) \
		SNAPFS_BIN=$(abspath $(FUZZ_BIN)) FUZZ_SECONDS=$(FUZZ_SECONDS)

# The threaded daemon under ThreadSanitizer, driven by the mount suites.
check-tsan: build
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DSNAPFS_WERROR=$(WERROR) \
		-DCMAKE_C_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
		-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread >/dev/null
	@cmake --build build-tsan -j$(JOBS) --target snapfs
	@scripts/check-tsan.sh $(BUILD) build-tsan

bench: build
	@bench/run.sh $(BUILD)

install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

# The Debian packages (snapfs, libsnapfs0, libsnapfs-dev) from debian/, built
# from a copy of the committed tree in build-deb/, then checked by lintian.
deb:
	@scripts/deb.sh build-deb

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-tsan build-deb build-fuzz
