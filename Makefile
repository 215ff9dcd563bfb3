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

# A statically linked release binary for boxes with no runtime, stripped,
# at target/static/tcpfetch. With the musl target installed (`rustup target
# add x86_64-unknown-linux-musl`, which .ci/run does) it is a musl build with
# the release profile: 1.16 MB, no NSS, DNS through musl's own resolver.
# Without it, glibc's static libc: that build needs opt-level z (sha2 kept
# at 3, or hashing halves), no PIE and tcpfetch's own /etc/hosts lookup to
# come near the 1.5 MiB budget, and still misses it (see tests/README.md).
# Unwinding stays on in both: the server survives a panicking connection.
MUSL_TARGET := x86_64-unknown-linux-musl
STATIC_TARGET ?= $(if $(shell rustup target list --installed 2>/dev/null | grep -x $(MUSL_TARGET)),$(MUSL_TARGET),x86_64-unknown-linux-gnu)
STATIC_BIN := target/static/tcpfetch

static:
ifeq ($(STATIC_TARGET),$(MUSL_TARGET))
	RUSTFLAGS='-C target-feature=+crt-static' \
	$(CARGO) build --release --target $(STATIC_TARGET)
else
	CARGO_PROFILE_RELEASE_OPT_LEVEL=z \
	RUSTFLAGS='-C target-feature=+crt-static -C relocation-model=static' \
	$(CARGO) build --release --target $(STATIC_TARGET) \
		--config 'profile.release.package.sha2.opt-level=3'
endif
	mkdir -p target/static
	cp target/$(STATIC_TARGET)/release/tcpfetch $(STATIC_BIN)
	strip $(STATIC_BIN)
	@echo "static build for $(STATIC_TARGET):"
	@ls -l $(STATIC_BIN)

# Faults, hostile clients and long fuzzing that take more than ~30 s: the
# #[ignore] tests of tests/soak.rs on a release build (one at a time, since
# they measure the server's threads and memory), then the fuzz targets of
# tests/fuzz.rs for FUZZ_SECONDS each. Not CI; results go in tests/README.md's
# Reliability section.
FUZZ_SECONDS ?= 300

soak:
	$(CARGO) test --release --test soak -- --ignored --nocapture --test-threads 1
	TCPFETCH_FUZZ_SECONDS=$(FUZZ_SECONDS) $(CARGO) test --release --test fuzz -- --nocapture

clean:
	$(CARGO) clean
