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
