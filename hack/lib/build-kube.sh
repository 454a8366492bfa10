#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler and kubelet 1.20.2, and the pause
# binary of a pod's sandbox, from Debian's `kubernetes` source package.
#
# Why from source: these machines reach only PyPI, Debian and npm, so no release binary can be
# downloaded, and Debian ships the full Kubernetes tree (with vendor/) only as a source package.
# The recipe is ../shared/reference/platform.md; each step below says which of its quirks it handles.
#
# Usage: build-kube.sh OUT_DIR   (writes OUT_DIR/{kube-apiserver,kube-controller-manager,kube-scheduler,kubelet,pause})
set -euo pipefail

out_dir=${1:?usage: build-kube.sh OUT_DIR}
k8s_version=v1.20.2
work=$(mktemp -d "${TMPDIR:-/tmp}/tikv-operator-kube-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

log() { printf '[build-kube] %s\n' "$*" >&2; }

# 1. The source package. deb-src entries are derived from the machine's own deb entries so the
#    build uses whatever mirror the machine is configured with.
if ! grep -qsE '^(deb-src |Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/*; then
    log "adding deb-src entries next to the machine's deb entries"
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
            >/etc/apt/sources.list.d/tikv-operator-deb-src.sources
    else
        grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
            >/etc/apt/sources.list.d/tikv-operator-deb-src.list
    fi
    apt-get update -qq
fi
log "downloading Debian's kubernetes source package"
if ! (cd "$work" && apt-get source --download-only kubernetes >/dev/null 2>&1); then
    # The package lists may predate the deb-src entries (or be stale): refresh once and retry.
    apt-get update -qq
    (cd "$work" && apt-get source --download-only kubernetes >/dev/null)
fi
orig=$(compgen -G "$work/kubernetes_*really1.20.2.orig.tar.gz" | head -n1 || true)
[[ -n "$orig" ]] || { log "no kubernetes 1.20.2 orig tarball in the source package"; exit 1; }

export GOPATH="$work/gopath" GO111MODULE=off CGO_ENABLED=0 GOFLAGS=-mod=vendor GOCACHE="$work/gocache"
unset GOFLAGS  # GOPATH mode ignores -mod; keep the environment plain
tree="$GOPATH/src/k8s.io/kubernetes"
mkdir -p "$tree"
log "unpacking $(basename "$orig")"
tar -xzf "$orig" -C "$tree" --strip-components=1

# 2. vendor/ carries modern-go/reflect2 v1.0.1, which crashes at run time with Go >= 1.18:
#    swap in Debian's 1.0.2 sources (without its go.mod; go.mod and vendor/modules.txt stay as they are).
reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
[[ -d "$reflect2" ]] || { log "missing $reflect2 (Debian package golang-github-modern-go-reflect2-dev)"; exit 1; }
rm -rf "$tree/vendor/github.com/modern-go/reflect2"
mkdir -p "$tree/vendor/github.com/modern-go/reflect2"
find "$reflect2" -maxdepth 1 -type f ! -name go.mod -exec cp {} "$tree/vendor/github.com/modern-go/reflect2/" \;

cd "$tree"

# 3. The OpenAPI definitions are generated at build time and are not in the tarball.
log "building openapi-gen"
go build -o "$work/openapi-gen" k8s.io/kubernetes/vendor/k8s.io/kube-openapi/cmd/openapi-gen

gen_openapi() {  # gen_openapi OUTPUT_PACKAGE INPUT_PACKAGES(comma separated)
    "$work/openapi-gen" -i "$2" -p "k8s.io/kubernetes/$1" -O zz_generated.openapi \
        -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -o "$GOPATH/src" >/dev/null 2>&1
    [[ -f "$1/zz_generated.openapi.go" ]] || { log "openapi-gen wrote nothing for $1"; exit 1; }
}

openapi_dirs() {  # every package dir (under the given roots) with a line starting "// +k8s:openapi-gen="
    grep -RlE --include='*.go' '^// \+k8s:openapi-gen=' "$@" 2>/dev/null \
        | xargs -r -n1 dirname | sort -u \
        | grep -vE 'code-generator|sample-apiserver' \
        | sed 's|^\./||; s|^|k8s.io/kubernetes/|' | paste -sd, -
}

log "generating OpenAPI definitions"
# The staging packages under vendor/k8s.io are symlinks: -R follows them.
gen_openapi pkg/generated/openapi "$(openapi_dirs ./pkg ./vendor/k8s.io ./cmd)"
meta=k8s.io/kubernetes/vendor/k8s.io/apimachinery/pkg/apis/meta/v1
base="$meta,k8s.io/kubernetes/vendor/k8s.io/apimachinery/pkg/runtime,k8s.io/kubernetes/vendor/k8s.io/apimachinery/pkg/version,k8s.io/kubernetes/vendor/k8s.io/api/autoscaling/v1"
gen_openapi vendor/k8s.io/kube-aggregator/pkg/generated/openapi \
    "$base,$(openapi_dirs ./vendor/k8s.io/kube-aggregator/pkg/apis)"
gen_openapi vendor/k8s.io/apiextensions-apiserver/pkg/generated/openapi \
    "$base,$(openapi_dirs ./vendor/k8s.io/apiextensions-apiserver/pkg/apis)"

# 4. Without the version flags /version is blank and helm's kubeVersion checks break.
#    `--version` reads component-base's copy of these variables, GET /version client-go's: stamp both.
ldflags="-s -w"
for v in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
    ldflags+=" -X $v.gitVersion=$k8s_version -X $v.gitMajor=1 -X $v.gitMinor=20 -X $v.gitTreeState=clean"
done
mkdir -p "$out_dir"
commands=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
for cmd in "${commands[@]}"; do
    log "building $cmd (a few minutes)"
    go build -ldflags "$ldflags" -o "$work/$cmd" "k8s.io/kubernetes/cmd/$cmd"
done
# 5. The pod sandbox's process (`pause`), static so that its image needs nothing else: the node's
#    containerd cannot pull registry.k8s.io/pause, so the platform builds that image from this binary.
log "building pause"
gcc -Os -static -DVERSION=3.4.1 -o "$work/pause" build/pause/linux/pause.c
strip "$work/pause"
# Install everything at the end so an interrupted build never leaves a half-filled cache behind.
for cmd in "${commands[@]}" pause; do
    mv "$work/$cmd" "$out_dir/$cmd"
done
log "done: $("$out_dir/kube-apiserver" --version)"
