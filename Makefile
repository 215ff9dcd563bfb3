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

# Load test against a local serve (1000 × 1 MiB, 100 × 10 MiB), speed
# against references, and verify/sum against sha256sum and the in-memory
# hash rate; not CI. Results go in tests/README.md's Performance section.
bench: build
	bash tests/bench.sh $(BIN)
	bash tests/perf.sh $(BIN)
	bash tests/verify-bench.sh $(BIN)
	bash tests/durable.sh $(BIN)
	bash tests/server-bench.sh $(BIN)

# A statically linked, stripped release binary for boxes with no runtime, at
# target/static/$(TARGET)/tcpfetch. TARGET is a rustup target triple:
#   make static                                      # x86_64-unknown-linux-musl
#   make static TARGET=aarch64-unknown-linux-musl    # 64-bit ARM boards
#   make static TARGET=armv7-unknown-linux-musleabihf  # where rustup has it
# A missing target is installed with rustup first. A musl target links with
# rustc's bundled rust-lld and musl's own crt, so no C cross compiler is
# needed for any architecture; symbols are stripped by rustc (strip = true),
# which works for every target where binutils' strip does not; the code is
# optimised for size except sha2. The result has no NSS and resolves names
# through musl's own resolver. Budget: 1.5 MiB per architecture
# (tests/README.md has the sizes). When the x86_64 musl
# target cannot be installed (no network), the x86_64 build falls back to
# glibc's static libc at target/static/x86_64-unknown-linux-gnu/tcpfetch:
# that needs opt-level z (sha2 kept at 3, or hashing halves), no PIE and
# tcpfetch's own /etc/hosts lookup, and is still over the budget.
# Unwinding stays on: the server survives a panicking connection.
TARGET ?= x86_64-unknown-linux-musl
GLIBC_FALLBACK := x86_64-unknown-linux-gnu
STRIP_CONFIG := --config 'profile.release.strip=true'
# Optimised for size but sha2 at full speed: the same hash rate (sum of
# 1 GiB: 0.82 s either way), about 300 KB less (tests/README.md).
SMALL_CONFIG := --config 'profile.release.opt-level="s"' \
	--config 'profile.release.package.sha2.opt-level=3'

static:
	@if ! rustup target list --installed 2>/dev/null | grep -qx '$(TARGET)'; then \
		echo "make static: installing the rustup target $(TARGET)"; \
		rustup target add '$(TARGET)' || { \
			if [ '$(TARGET)' = x86_64-unknown-linux-musl ]; then \
				echo "make static: cannot install $(TARGET); building with static glibc instead" >&2; \
				exec $(MAKE) --no-print-directory static-glibc; \
			fi; \
			echo "make static: rustup cannot install the target $(TARGET) (its" >&2; \
			echo "  reason is above): no network, or no such target for this toolchain" >&2; \
			echo "  ('rustup target list' names them all). Once 'rustup target add" >&2; \
			echo "  $(TARGET)' works, run 'make static TARGET=$(TARGET)' again." >&2; \
			exit 1; \
		}; \
	fi; \
	$(MAKE) --no-print-directory static-build && \
	$(MAKE) --no-print-directory static-copy STATIC_TARGET=$(TARGET)

.PHONY: static-build static-glibc static-copy

static-build:
	RUSTFLAGS='-C target-feature=+crt-static -C linker=rust-lld -C link-self-contained=yes' \
	$(CARGO) build --release --target $(TARGET) $(STRIP_CONFIG) $(SMALL_CONFIG)

static-glibc:
	CARGO_PROFILE_RELEASE_OPT_LEVEL=z \
	RUSTFLAGS='-C target-feature=+crt-static -C relocation-model=static' \
	$(CARGO) build --release --target $(GLIBC_FALLBACK) $(STRIP_CONFIG) \
		--config 'profile.release.package.sha2.opt-level=3'
	@$(MAKE) --no-print-directory static-copy STATIC_TARGET=$(GLIBC_FALLBACK)

static-copy:
	mkdir -p target/static/$(STATIC_TARGET)
	cp target/$(STATIC_TARGET)/release/tcpfetch target/static/$(STATIC_TARGET)/tcpfetch
	@echo "static build for $(STATIC_TARGET):"
	@ls -l target/static/$(STATIC_TARGET)/tcpfetch

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
