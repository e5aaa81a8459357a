# gruntime + imgtool. The README's two commands: `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
RELEASE := target/release
DEBUG := target/debug
# gruntime's release build is static and non-PIE: fewer pages to fault in on every (short-lived) call.
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
GRUNTIME_RELEASE := target/$(HOST)/release/gruntime

# Everything the tests, the demo and the benchmarks use, all from Debian's archive.
APT_PACKAGES := busybox-static runc crun skopeo umoci docker-registry golang-github-containers-common \
	qemu-system-x86 linux-image-amd64 cpio xz-utils util-linux uidmap iproute2 hyperfine gcc \
	openssl apache2-utils tmux zstd pigz libc6-dev kmod bsdutils containerd podman conmon \
	time python3 tar gzip

.PHONY: all build release deps demo test test-unit test-integration bench lint clean

all: build

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=900 $$missing; \
	fi

build:
	$(CARGO) build --workspace

release:
	RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
		$(CARGO) build --release -p gruntime --target $(HOST)
	$(CARGO) build --release -p imgtool

# A container from an image, offline: busybox-static → an OCI image → imgtool unpack → gruntime run.
demo: deps release
	@GRUNTIME=$(GRUNTIME_RELEASE) bash bundles/demo.sh $(RELEASE)

test: deps build test-unit test-integration

test-unit:
	$(CARGO) test --workspace --bins --lib

# OCI runtime-tools + Kubernetes critest against gruntime and (control) runc, offline; results in
# target/conformance/, checked against tests/integration/conformance/expected.tsv. See docs/conformance.md.
.PHONY: conformance
conformance:
	$(CARGO) build -p gruntime
	bash tests/integration/conformance/run.sh

# Integration tests run one file at a time: each drives real containers, registries or a VM.
test-integration: build
	$(CARGO) test -p integration --no-fail-fast -- --test-threads=2

bench: deps release
	@GRUNTIME_BIN=$(CURDIR)/$(GRUNTIME_RELEASE) IMGTOOL_BIN=$(CURDIR)/$(RELEASE)/imgtool bash tests/integration/bench/run-all.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf bundles/busybox
