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

clean:
	$(CARGO) clean
