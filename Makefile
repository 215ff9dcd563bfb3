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

# A statically linked release binary for boxes with no runtime: glibc's
# static libc on this toolchain (see README for musl and ARM). Unwinding
# stays on (the server survives a panicking connection thread).
STATIC_TARGET ?= x86_64-unknown-linux-gnu
STATIC_BIN := target/static/tcpfetch

static:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --release --target $(STATIC_TARGET)
	mkdir -p target/static
	cp target/$(STATIC_TARGET)/release/tcpfetch $(STATIC_BIN)
	strip $(STATIC_BIN)
	@ls -l $(STATIC_BIN)

clean:
	$(CARGO) clean
