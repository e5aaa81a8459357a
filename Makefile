# gruntime + imgtool. The README's two commands: `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
RELEASE := target/release
DEBUG := target/debug
# gruntime's release build is static and non-PIE: fewer pages to fault in on every (short-lived) call.
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
GRUNTIME_RELEASE := target/$(HOST)/release/gruntime

# What `make demo` needs: the build's C toolchain (cc-built crates, the static libc for gruntime's
# release build) and the busybox its image is made of. All from Debian's archive.
DEMO_PACKAGES := busybox-static gcc libc6-dev tar gzip
# Everything the tests and the benchmarks use on top: peers to compare with, container engines to
# drive gruntime (docker.io: dockerd 20.10 with its containerd and tini), and the qemu VM with its
# kernel; systemd, dbus and apparmor for the systemd-booted guest (Docker there loads its AppArmor
# profile with apparmor_parser); gnupg and gpgv for imgtool's GPG signatures (signedBy, --sign-by); criu for
# checkpoint/restore.
TEST_PACKAGES := $(DEMO_PACKAGES) runc crun skopeo umoci docker-registry golang-github-containers-common \
	qemu-system-x86 linux-image-amd64 cpio xz-utils util-linux uidmap iproute2 hyperfine \
	openssl apache2-utils tmux zstd pigz kmod bsdutils containerd podman conmon docker.io \
	systemd dbus dbus-user-session apparmor time python3 python3-venv gnupg gpgv criu

.PHONY: all build release deps deps-demo demo demo-run test test-unit test-integration soak chaos fuzz bench lint clean

all: build

# apt-get install whichever of $(1) are missing.
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=900 $$missing; \
	fi
endef

deps:
	$(call apt_install,$(TEST_PACKAGES))

deps-demo:
	$(call apt_install,$(DEMO_PACKAGES))

build:
	$(CARGO) build --workspace

release:
	RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
		$(CARGO) build --release -p gruntime --target $(HOST)
	$(CARGO) build --release -p imgtool

# A container from an image, offline, with the project's own tools only: busybox-static → an OCI
# image layout (tar, gzip, sha256sum) → imgtool pull → imgtool unpack → gruntime run.
demo: deps-demo release
	@$(MAKE) --no-print-directory demo-run

# The demo with binaries built already: DEMO_BIN=DIR holding imgtool and gruntime (default: the
# release build, with its static gruntime).
DEMO_BIN ?= $(RELEASE)
demo-run:
	@GRUNTIME="$(if $(filter $(RELEASE),$(DEMO_BIN)),$(GRUNTIME_RELEASE),$(DEMO_BIN)/gruntime)" \
		bash bundles/demo.sh "$(DEMO_BIN)"

test: deps build test-unit test-integration

test-unit:
	$(CARGO) test --workspace --bins --lib

# OCI runtime-tools + Kubernetes critest against gruntime and (control) runc, offline; results in
# target/conformance/, checked against tests/integration/conformance/expected.tsv. See docs/conformance.md.
.PHONY: conformance conformance-host conformance-ci
conformance: deps
	$(CARGO) build -p gruntime
	bash tests/integration/conformance/run.sh

# The host place only: runtime-tools' 42 host programs, gruntime beside runc (about a minute once the
# suite is built and cached).
conformance-host: deps
	$(CARGO) build -p gruntime
	CONFORMANCE_PLACES=host bash tests/integration/conformance/run.sh

# What CI runs after make test: every place (host, the cgroup-v2 VM, critest) for gruntime alone, checked
# against expected.tsv (16.5 min here, the suites' build included); runc's control runs with make conformance.
conformance-ci: deps
	$(CARGO) build -p gruntime
	CONFORMANCE_RUNTIMES=gruntime bash tests/integration/conformance/run.sh

# Integration tests run one file at a time: each drives real containers, registries or a VM.
test-integration: build
	$(CARGO) test -p integration --no-fail-fast -- --test-threads=2

# Both soaks at full size: the imgtool SIGKILL soak (SOAK_ITERATIONS, default 300, as in make test;
# SOAK_SEED=S to replay a run) and the gruntime chaos soak in the VM (CHAOS_ITERATIONS, default 1000;
# make test runs 300). `make chaos` runs the second alone. Each prints its seed first.
SOAK_ITERATIONS ?= 300
CHAOS_ITERATIONS ?= 1000
soak: build
	IMGTOOL_SOAK_ITERATIONS=$(SOAK_ITERATIONS) $(if $(SOAK_SEED),IMGTOOL_SOAK_SEED=$(SOAK_SEED)) \
		$(CARGO) test -p integration --test imgtool_soak -- --nocapture
	@$(MAKE) --no-print-directory chaos

chaos: build
	GRUNTIME_CHAOS_ITERATIONS=$(CHAOS_ITERATIONS) $(if $(CHAOS_SEED),GRUNTIME_CHAOS_SEED=$(CHAOS_SEED)) \
		$(CARGO) test -p integration --test gruntime_chaos -- --nocapture

# Every fuzz target for FUZZ_SECONDS each (cargo-afl, installed from crates.io on first use; as root
# for the layer target's jail). Not part of make test: the tests replay fuzz/corpus and fuzz/crashes.
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(if $(FUZZ_TARGETS),FUZZ_TARGETS="$(FUZZ_TARGETS)") bash fuzz/run.sh

bench: deps release
	@GRUNTIME_BIN="$(CURDIR)/$(GRUNTIME_RELEASE)" IMGTOOL_BIN="$(CURDIR)/$(RELEASE)/imgtool" bash tests/integration/bench/run-all.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf bundles/busybox bundles/busybox-image bundles/imgtool-store
