#!/usr/bin/env bash
# Provisions a real Kubernetes control plane for the operator and chart tests (issue 9), built from source
# through the Go module proxy and cached outside the repo:
#
#   ${SMQ_KUBE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/smq}/kube-<version>/bin/kube-apiserver
#                                                                  /bin/kube-controller-manager
#                                                                  /bin/etcd   (the etcd Kubernetes pins)
#                                                                  /bin/helm   (Helm v3, for lint/template)
#
# test/helpers/kube.ts starts that etcd and kube-apiserver on loopback the way controller-runtime's envtest
# does (no kubelet, no scheduler), and on request (startKube({ controllers: true })) kube-controller-manager
# with a few controllers (the garbage collector, StatefulSet, ...); the chart tests run `helm lint` and
# `helm template` from the same bin/.
#
# How: `go install k8s.io/kubernetes/cmd/kube-apiserver@v1.X.Y` (or kube-controller-manager) is refused,
# because k8s.io/kubernetes's go.mod replaces its staging modules (k8s.io/api, apimachinery, apiserver,
# client-go, ...) with directories of its own tree. So this script writes a small module in
# kube-<version>/src whose go.mod requires k8s.io/kubernetes v1.X.Y and replaces every staging module with its
# published v0.X.Y, the list generated from the `k8s.io/... v0.0.0` lines of k8s.io/kubernetes's own require
# block; kube-controller-manager is built from the same module with the same flags. etcd is built in the same
# module at the version k8s.io/kubernetes requires, the one its CI runs against (with Debian's etcd 3.4 the
# API server starts but logs "RequestWatchProgress feature is not supported" and serves consistent lists from
# etcd, not from its watch cache as a real cluster does).
# Helm needs no such trick: `go install helm.sh/helm/v3/cmd/helm@v<version>`. Builds are static
# (CGO_ENABLED=0), `-trimpath -ldflags=-s -w`, with the version stamps the upstream Makefiles set, and run
# under `nice -n 19`.
#
# Go: building needs the Go that k8s.io/kubernetes v<version>'s go.mod names on its `go` line, or newer.
# The `go` on PATH is used when it is new enough. When there is none, Debian's golang-go is installed with
# apt (as root, or through passwordless sudo, as scripts/provision.sh does). When the go it finds is older
# (Debian 12's is 1.19: too old for Kubernetes 1.37, and for GOTOOLCHAIN switching, which came with Go
# 1.21), Go $GO_VERSION (below; SMQ_GO_VERSION) is bootstrapped from the module proxy: the old go downloads
# the module golang.org/toolchain@v0.0.1-go<version>.<os>-<arch> (the distribution that Go's own toolchain
# switching fetches) into a throwaway module cache, the distribution moves to
#
#   ${SMQ_KUBE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/smq}/go-<version>/bin/go
#
# the execute bits the module zip does not keep are set again (bin/*, pkg/tool/*/*), `go version` is
# checked, and the marker go-<version>/.smq-go-ok is written last. That go then runs every later step
# (first on PATH, GOROOT unset), and later runs reuse it, even with no go on PATH at all. About 70 MB of
# download, 240 MB on disk and 10 s. Whichever go is chosen, GOTOOLCHAIN=local keeps it from switching to
# another. `scripts/kube.sh --go` stops there: it prints the go it would build with and builds nothing.
#
# Go reaches the module proxy through whatever this machine configures (GOPROXY, GOFLAGS, GONOSUMDB, GOSUMDB,
# .netrc): no registry is named here. Downloads stay in Go's module cache (`go env GOMODCACHE`). Compiling
# uses a private build cache, kube-<version>/.gocache, removed once everything is built, so a run that stops
# half-way resumes where it was and a finished one leaves the shared build cache (`go env GOCACHE`) untouched.
#
# The first run takes a while: about 9 minutes on two shared cores (kube-apiserver 7.5, helm 1, etcd a few
# seconds) and more for kube-controller-manager (6.5 minutes when built alone, into an empty build cache, as
# for a cache from before it was added; less after kube-apiserver, whose packages it shares), about 850 MB of
# module downloads, a 3.5 GB private build cache while it lasts, and 250 MB of binaries in the end. Every
# later run sees versions.txt, written last, and does nothing; a run after one that stopped half-way (or a
# versions.txt without the kube-controller-manager line, from before it was added) skips every binary
# already built at the right version. Called from scripts/provision.sh.
#
# Usage: scripts/kube.sh              ensure the binaries
#        scripts/kube.sh --print-home  print the kube-<version> directory, change nothing
#        scripts/kube.sh --go          ensure a Go new enough (see above), print its go command (last line)
# Environment: SMQ_KUBE_VERSION, SMQ_HELM_VERSION, SMQ_GO_VERSION (defaults below), SMQ_KUBE_CACHE (parent
# of kube-<version> and go-<version>).
set -euo pipefail

KUBE_VERSION="${SMQ_KUBE_VERSION:-1.37.2}"
HELM_VERSION="${SMQ_HELM_VERSION:-3.22.0}"
# The Go bootstrapped when the go on PATH is missing or too old; at least what KUBE_VERSION's go.mod names.
GO_VERSION="${SMQ_GO_VERSION:-1.26.8}"

CACHE_ROOT="${SMQ_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smq}"
KUBE_HOME="$CACHE_ROOT/kube-$KUBE_VERSION"
BIN="$KUBE_HOME/bin"
SRC="$KUBE_HOME/src"
# Written last, naming the version of every binary: its presence (with the expected versions) means a
# complete build.
MARKER="$KUBE_HOME/versions.txt"

GO_HOME="$CACHE_ROOT/go-$GO_VERSION"
GO_MARKER="$GO_HOME/.smq-go-ok"

MODE=build
case "$*" in
  "") ;;
  --print-home)
    printf '%s\n' "$KUBE_HOME"
    exit 0
    ;;
  --go) MODE=go ;;
  *)
    printf 'usage: %s [--print-home | --go]\n' "$0" >&2
    exit 2
    ;;
esac

log() { printf '[kube] %s\n' "$*"; }
die() { printf '[kube] ERROR: %s\n' "$*" >&2; exit 1; }

case "$KUBE_VERSION" in
  1.[0-9]*.[0-9]*) ;;
  *) die "SMQ_KUBE_VERSION=$KUBE_VERSION: expected 1.<minor>.<patch>, as in 1.37.2" ;;
esac
# The staging modules are published as v0.<minor>.<patch> for Kubernetes v1.<minor>.<patch>.
STAGING_VERSION="0.${KUBE_VERSION#1.}"

marker_ok() {
  [ -s "$MARKER" ] &&
    grep -qx "kubernetes v$KUBE_VERSION" "$MARKER" &&
    grep -qx "kube-controller-manager v$KUBE_VERSION" "$MARKER" &&
    grep -qx "helm v$HELM_VERSION" "$MARKER" &&
    [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ] && [ -x "$BIN/etcd" ] && [ -x "$BIN/helm" ]
}

if [ "$MODE" = build ] && marker_ok; then
  log "kube-apiserver, kube-controller-manager, etcd and helm present in $BIN ($(tr '\n' ' ' <"$MARKER"| sed 's/ $//'))"
  exit 0
fi

# --- Go -----------------------------------------------------------------------------------------------
# apt_install PKG...: as scripts/provision.sh does it: as root or through passwordless sudo, running
# `apt-get update` only when the install fails without it.
apt_install() {
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; } ||
      die "need root (or passwordless sudo) to install $* with apt: install it by hand and re-run"
    sudo=(sudo -n)
  fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand and re-run"
  log "installing Debian packages: $*"
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  if ! "${apt[@]}" install --no-install-recommends "$@" </dev/null; then
    log "install failed; refreshing package lists (apt-get update) and retrying"
    "${sudo[@]}" apt-get update -q </dev/null || die "apt-get update failed"
    "${apt[@]}" install --no-install-recommends "$@" </dev/null || die "apt-get install $* failed"
  fi
}

# go_at_least HAVE WANT: Go version HAVE (go1.19.8, go1.26rc1) is WANT (a go.mod go line: 1.26, 1.26.0) or
# newer. A pre-release counts as older than its release.
go_at_least() {
  awk -v have="${1#go}" -v want="${2#go}" 'function field(v, i,   f, n) {
      n = split(v, f, ".")
      if (i > n) return 0
      return f[i] ~ /^[0-9]+$/ ? f[i] + 0 : f[i] + 0 - 0.5
    }
    BEGIN {
      for (i = 1; i <= 3; i++)
        if (field(have, i) != field(want, i)) exit !(field(have, i) > field(want, i))
      exit 0
    }'
}

go_bootstrapped() {
  [ -f "$GO_MARKER" ] && [ -x "$GO_HOME/bin/go" ]
}

# use_bootstrapped_go: every later go command is the one in $GO_HOME.
use_bootstrapped_go() {
  export PATH="$GO_HOME/bin:$PATH"
  unset GOROOT
  hash -r
}

# bootstrap_go: downloads Go $GO_VERSION through the module proxy with the go on PATH (any version that
# has modules), into $GO_HOME, unless an earlier run did.
go_tmp=""
trap '[ -z "$go_tmp" ] || { chmod -R u+w "$go_tmp" 2>/dev/null; rm -rf "$go_tmp"; }' EXIT
bootstrap_go() {
  if go_bootstrapped; then
    log "using Go $GO_VERSION bootstrapped earlier in $GO_HOME"
    use_bootstrapped_go
    return
  fi
  local os arch t0=$SECONDS
  os="$(go env GOHOSTOS)" && arch="$(go env GOHOSTARCH)" || die "\`go env GOHOSTOS GOHOSTARCH\` failed"
  local module="golang.org/toolchain@v0.0.1-go$GO_VERSION.$os-$arch"
  log "bootstrapping Go $GO_VERSION: downloading $module with $(go env GOVERSION) through the Go module proxy"
  mkdir -p "$CACHE_ROOT"
  # What a run that was killed half-way left behind (named after its process id).
  local stale
  for stale in "$CACHE_ROOT"/.go-*.tmp.*; do
    [ -d "$stale" ] && ! kill -0 "${stale##*.}" 2>/dev/null || continue
    chmod -R u+w "$stale" 2>/dev/null || true
    rm -rf "$stale"
  done
  # A throwaway module (so no go.mod around the cache directory is involved) and module cache (the
  # distribution then moves out of it instead of being copied, and the shared cache stays as it was).
  go_tmp="$CACHE_ROOT/.go-$GO_VERSION.tmp.$$"
  mkdir -p "$go_tmp/mod"
  printf 'module smq.test/go-bootstrap\n' >"$go_tmp/go.mod"
  local json dir
  json="$(cd "$go_tmp" && GOMODCACHE="$go_tmp/mod" GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod \
    go mod download -json "$module" 2>&1)" || true
  dir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
  [ -n "$dir" ] && [ -f "$dir/bin/go" ] || {
    printf '%s\n' "$json" >&2
    die "could not download $module through the Go module proxy (GOPROXY=$(go env GOPROXY)), output above; is go$GO_VERSION a Go release for $os/$arch? (SMQ_GO_VERSION)"
  }
  # Module zips keep no file modes: what Go's own toolchain switching makes executable after downloading.
  chmod -R u+w "$dir"
  find "$dir/bin" "$dir/pkg/tool" -type f -exec chmod a+x {} +
  find "$dir/lib" -type f -name 'go_?*_?*_exec' -exec chmod a+x {} +
  local want="go version go$GO_VERSION $os/$arch" got
  got="$(env -u GOROOT GOTOOLCHAIN=local "$dir/bin/go" version 2>&1)" || true
  [ "$got" = "$want" ] || die "the downloaded Go says \"$got\", not \"$want\" ($dir)"
  printf '%s\n' "$got" >"$dir/$(basename "$GO_MARKER")"
  # A go-<version> without its marker is not one this script finished (the move below is atomic): replace it.
  if ! go_bootstrapped; then
    chmod -R u+w "$GO_HOME" 2>/dev/null || true
    rm -rf "$GO_HOME"
    mv -T "$dir" "$GO_HOME" || go_bootstrapped || die "could not move $dir to $GO_HOME"
  fi
  chmod -R u+w "$go_tmp" && rm -rf "$go_tmp"
  go_tmp=""
  log "  Go $GO_VERSION in $GO_HOME, in $((SECONDS - t0)) s"
  use_bootstrapped_go
}

# need_go WANT WHAT: the go on PATH is WANT or newer, or Go $GO_VERSION is bootstrapped and put first.
need_go() {
  local have
  have="$(go env GOVERSION)" || die "\`go env GOVERSION\` failed (go is $(command -v go))"
  go_at_least "$have" "$1" && return
  go_at_least "$GO_VERSION" "$1" ||
    die "$2 needs Go $1 or newer, and the Go this script bootstraps is $GO_VERSION: raise GO_VERSION in $0 (or set SMQ_GO_VERSION)"
  log "$(command -v go) is $have; $2 needs Go $1 or newer"
  bootstrap_go
}

# Some go to start from: the one on PATH, else one bootstrapped earlier, else Debian's.
if ! command -v go >/dev/null 2>&1; then
  if go_bootstrapped; then
    use_bootstrapped_go
  else
    log "go not found on PATH; installing Debian's golang-go (to bootstrap a newer Go from, if it is too old)"
    apt_install golang-go
    hash -r
    command -v go >/dev/null 2>&1 || die "go still not on PATH after installing golang-go"
  fi
fi
export GOTOOLCHAIN=local

mkdir -p "$BIN" "$SRC"

# One build at a time per cache directory (two provision runs at once would otherwise race on src/ and bin/).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$KUBE_HOME/.lock"
  if ! flock -n 9; then
    log "another scripts/kube.sh is building in $KUBE_HOME; waiting for it"
    flock 9
  fi
  if [ "$MODE" = build ] && marker_ok; then
    log "built by the other run: $(tr '\n' ' ' <"$MARKER" | sed 's/ $//')"
    exit 0
  fi
fi

BUILD_LOG="$KUBE_HOME/build.log"
: >"$BUILD_LOG"
export GOCACHE="$KUBE_HOME/.gocache"
export CGO_ENABLED=0

# run DESCRIPTION CMD...: runs a step at the lowest priority, its output in build.log, and on failure shows
# the end of it.
run() {
  local what="$1"
  shift
  local t0=$SECONDS
  log "$what"
  printf '\n=== %s\n$ %s\n' "$what" "$*" >>"$BUILD_LOG"
  if ! nice -n 19 "$@" >>"$BUILD_LOG" 2>&1; then
    tail -n 40 "$BUILD_LOG" >&2
    die "$what failed (the end of $BUILD_LOG is above)"
  fi
  log "  done in $((SECONDS - t0)) s"
}

start=$SECONDS

# --- the module that builds kube-apiserver, kube-controller-manager and etcd ---------------------------
# k8s.io/kubernetes's go.mod, from the module proxy (`go list -m` fetches only that, with any go that has
# modules): its go line says which Go builds it.
k8s_mod="$(go list -m -json "k8s.io/kubernetes@v$KUBE_VERSION" 2>>"$BUILD_LOG" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')" || true
[ -n "$k8s_mod" ] && [ -s "$k8s_mod" ] ||
  die "could not fetch k8s.io/kubernetes@v$KUBE_VERSION through the Go module proxy (GOPROXY=$(go env GOPROXY)); see $BUILD_LOG"
k8s_go="$(awk '$1 == "go" { print $2; exit }' "$k8s_mod")"
[ -n "$k8s_go" ] || die "$k8s_mod has no go line: cannot tell which Go builds Kubernetes v$KUBE_VERSION"
need_go "$k8s_go" "Kubernetes v$KUBE_VERSION"
go_version="$(go env GOVERSION)"
if [ "$MODE" = go ]; then
  log "Kubernetes v$KUBE_VERSION needs Go $k8s_go or newer; using $go_version:"
  command -v go
  exit 0
fi

# Staging modules: the k8s.io requirements pinned at v0.0.0 in the require blocks (the versions that only the
# replace directives to ./staging/src/... make real).
mapfile -t staging < <(awk '
  /^require[[:space:]]*\(/ { inreq = 1; next }
  inreq && /^\)/           { inreq = 0; next }
  inreq && $1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }
  /^require[[:space:]]+k8s\.io\/[^ ]+[[:space:]]+v0\.0\.0/ { print $2 }
' "$k8s_mod" | sort -u)
[ "${#staging[@]}" -ge 10 ] ||
  die "found only ${#staging[@]} staging modules (k8s.io/* v0.0.0) in $k8s_mod; has k8s.io/kubernetes changed how it pins them?"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2; exit }' "$k8s_mod")"
[ -n "$etcd_version" ] || die "k8s.io/kubernetes v$KUBE_VERSION does not require go.etcd.io/etcd/server/v3: cannot tell which etcd to build"

{
  printf '// Generated by scripts/kube.sh for Kubernetes v%s: builds kube-apiserver, kube-controller-manager and etcd. Do not edit.\n' "$KUBE_VERSION"
  printf 'module smq.test/kube-tools\n\ngo %s\n\n' "$k8s_go"
  # The runtime defaults Kubernetes builds with (godebug lines of its go.mod).
  grep -E '^godebug[[:space:]]' "$k8s_mod" || true
  printf '\nrequire k8s.io/kubernetes v%s\n\n' "$KUBE_VERSION"
  printf 'tool (\n\tk8s.io/kubernetes/cmd/kube-apiserver\n\tk8s.io/kubernetes/cmd/kube-controller-manager\n\tgo.etcd.io/etcd/server/v3\n)\n\n'
  printf 'replace (\n'
  for m in "${staging[@]}"; do
    printf '\t%s => %s v%s\n' "$m" "$m" "$STAGING_VERSION"
  done
  printf ')\n'
} >"$SRC/go.mod.new"
# go.mod.in keeps what was generated (go mod tidy rewrites go.mod): a run that resumes a stopped build
# resolves the graph again only when the generated module changed.
if ! cmp -s "$SRC/go.mod.new" "$SRC/go.mod.in" || [ ! -s "$SRC/go.mod" ]; then
  cp "$SRC/go.mod.new" "$SRC/go.mod"
  mv "$SRC/go.mod.new" "$SRC/go.mod.in"
  rm -f "$SRC/go.sum"
else
  rm -f "$SRC/go.mod.new"
fi
log "Kubernetes v$KUBE_VERSION (${#staging[@]} staging modules at v$STAGING_VERSION), etcd $etcd_version, Go $go_version; module in $SRC"

if [ ! -s "$SRC/go.sum" ]; then
  (cd "$SRC" && run "resolving the module graph (go mod tidy; downloads what is missing)" go mod tidy) ||
    die "go mod tidy failed: does every staging module exist at v$STAGING_VERSION on the module proxy? (see $BUILD_LOG)"
fi

# The version stamps of hack/lib/version.sh: /version and the compatibility version read them.
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
k8s_minor="${KUBE_VERSION#1.}"
k8s_minor="${k8s_minor%%.*}"
k8s_ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=v$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

# version_is BINARY WANT: the binary exists and prints WANT in its --version output.
version_is() {
  # The output is read whole before grep looks at it: `--version | grep -q` under pipefail failed when grep quit at
  # the first line and etcd, still printing, died of SIGPIPE (a provisioning run stopped on a good etcd build).
  local out
  [ -x "$1" ] && out=$("$1" --version 2>/dev/null) && grep -qF -- "$2" <<<"$out"
}

if version_is "$BIN/kube-apiserver" "Kubernetes v$KUBE_VERSION"; then
  log "kube-apiserver v$KUBE_VERSION already built"
else
  # The tags upstream's release builds use: notest, and grpcnotrace to leave x/net/trace out.
  (cd "$SRC" && run "building kube-apiserver v$KUBE_VERSION (the long step)" \
    go build -trimpath -tags notest,grpcnotrace -ldflags "$k8s_ldflags" -o "$BIN/kube-apiserver.tmp" \
    k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"
fi
version_is "$BIN/kube-apiserver" "Kubernetes v$KUBE_VERSION" ||
  die "$BIN/kube-apiserver --version does not say Kubernetes v$KUBE_VERSION"

# The garbage collector, StatefulSet controller and the rest, for the tests that start some of them.
if version_is "$BIN/kube-controller-manager" "Kubernetes v$KUBE_VERSION"; then
  log "kube-controller-manager v$KUBE_VERSION already built"
else
  (cd "$SRC" && run "building kube-controller-manager v$KUBE_VERSION (the other long step)" \
    go build -trimpath -tags notest,grpcnotrace -ldflags "$k8s_ldflags" -o "$BIN/kube-controller-manager.tmp" \
    k8s.io/kubernetes/cmd/kube-controller-manager)
  mv "$BIN/kube-controller-manager.tmp" "$BIN/kube-controller-manager"
fi
version_is "$BIN/kube-controller-manager" "Kubernetes v$KUBE_VERSION" ||
  die "$BIN/kube-controller-manager --version does not say Kubernetes v$KUBE_VERSION"

if version_is "$BIN/etcd" "etcd Version: ${etcd_version#v}"; then
  log "etcd $etcd_version already built"
else
  (cd "$SRC" && run "building etcd $etcd_version" \
    go build -trimpath -tags grpcnotrace -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$BIN/etcd.tmp" "$BIN/etcd"
fi
version_is "$BIN/etcd" "etcd Version: ${etcd_version#v}" ||
  die "$BIN/etcd --version does not say etcd Version: ${etcd_version#v}"

# --- helm ---------------------------------------------------------------------------------------------
if [ -x "$BIN/helm" ] && "$BIN/helm" version --short 2>/dev/null | grep -q "^v$HELM_VERSION"; then
  log "helm v$HELM_VERSION already built"
else
  # Helm's Makefile stamps its version, and the Kubernetes version `helm template` and `helm lint` assume
  # (Capabilities.KubeVersion) from the k8s.io/client-go it is built with: v0.X.Y means Kubernetes 1.X.
  helm_mod="$(go mod download -json "helm.sh/helm/v3@v$HELM_VERSION" 2>>"$BUILD_LOG" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')" || true
  [ -n "$helm_mod" ] && [ -s "$helm_mod" ] ||
    die "could not fetch helm.sh/helm/v3@v$HELM_VERSION through the Go module proxy; see $BUILD_LOG"
  helm_go="$(awk '$1 == "go" { print $2; exit }' "$helm_mod")"
  need_go "${helm_go:-1.0}" "helm v$HELM_VERSION"
  go_version="$(go env GOVERSION)"
  helm_k8s_minor="$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2]; exit }' "$helm_mod")"
  [ -n "$helm_k8s_minor" ] || die "helm.sh/helm/v3@v$HELM_VERSION does not require k8s.io/client-go"
  helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
  helm_ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$helm_k8s_minor"
  done
  # Built outside any module (from /) so that `go install pkg@version` uses helm's own go.mod.
  (cd / && export GOBIN="$BIN" && run "building helm v$HELM_VERSION" \
    go install -trimpath -ldflags "$helm_ldflags" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION")
fi
helm_version=$("$BIN/helm" version --short 2>/dev/null || true)
grep -q "^v$HELM_VERSION" <<<"$helm_version" ||
  die "$BIN/helm version does not say v$HELM_VERSION"

# --- done: the marker last, then the private build cache goes ---------------------------------------
printf 'kubernetes v%s\nkube-controller-manager v%s\netcd %s\nhelm v%s\ngo %s\n' \
  "$KUBE_VERSION" "$KUBE_VERSION" "$etcd_version" "$HELM_VERSION" "$go_version" \
  >"$MARKER.tmp"
mv "$MARKER.tmp" "$MARKER"
if [ -d "$GOCACHE" ]; then
  log "removing the private Go build cache ($(du -sh "$GOCACHE" | cut -f1) in $GOCACHE)"
  chmod -R u+w "$GOCACHE" 2>/dev/null || true
  rm -rf "$GOCACHE"
fi
log "ready in $((SECONDS - start)) s: $(du -sh "$BIN" | cut -f1) in $BIN ($(tr '\n' ' ' <"$MARKER" | sed 's/ $//'))"
