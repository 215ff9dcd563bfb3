# tcpfetch — see README.md. `make test` is what CI runs.
CARGO ?= cargo
BIN := target/release/tcpfetch

.PHONY: all build test demo bench soak static clean

all: build

build:
	$(CARGO) build --release

test:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test

demo: build
	bash tests/demo.sh $(BIN)

# Load test against a local serve (1000 × 1 MiB, 100 × 10 MiB); not CI.
bench: build
	bash tests/bench.sh $(BIN)
	bash tests/perf.sh $(BIN)

# A statically linked release binary for boxes with no runtime: glibc's
# static libc on this toolchain (see README for musl and ARM). Size choices,
# measured against the 1.5 MiB budget: opt-level z for our code but 3 for
# sha2 (z would halve hashing speed), no PIE (-C relocation-model=static,
# -48 KB), fat LTO and one codegen unit as in the release profile, then
# stripped. Unwinding stays on: the server survives a panicking connection.
STATIC_TARGET ?= x86_64-unknown-linux-gnu
STATIC_BIN := target/static/tcpfetch

static:
	CARGO_PROFILE_RELEASE_OPT_LEVEL=z \
	RUSTFLAGS='-C target-feature=+crt-static -C relocation-model=static' \
	$(CARGO) build --release --target $(STATIC_TARGET) \
		--config 'profile.release.package.sha2.opt-level=3'
	mkdir -p target/static
	cp target/$(STATIC_TARGET)/release/tcpfetch $(STATIC_BIN)
	strip $(STATIC_BIN)
	@ls -l $(STATIC_BIN)

# Faults, hostile clients and long fuzzing that take more than ~30 s: the
# #[ignore] tests of tests/soak.rs on a release build (one at a time, since
# they measure the server's threads and memory), then the fuzz targets of
# tests/fuzz.rs for FUZZ_SECONDS each. Not CI; results go in README.md's
# Reliability section.
FUZZ_SECONDS ?= 300

soak:
	$(CARGO) test --release --test soak -- --ignored --nocapture --test-threads 1
	TCPFETCH_FUZZ_SECONDS=$(FUZZ_SECONDS) $(CARGO) test --release --test fuzz -- --nocapture

clean:
	$(CARGO) clean
