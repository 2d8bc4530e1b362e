#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries the end-to-end tests run (kube-apiserver) from the Go
# module proxy, once per version, into a cache outside the clone. Prints the bin folder on stdout.
#
#   CHEOPS_CACHE   cache root (default: $HOME/.cache/cheops)
#   KUBE_VERSION   k8s.io/kubernetes version (default: v1.35.4)
set -euo pipefail
KUBE_VERSION=${KUBE_VERSION:-v1.35.4}
STAGING_VERSION=v0${KUBE_VERSION#v1}
CACHE=${CHEOPS_CACHE:-$HOME/.cache/cheops}
BIN=$CACHE/kube-$KUBE_VERSION/bin
if [ -x "$BIN/kube-apiserver" ]; then
  echo "$BIN"
  exit 0
fi
mkdir -p "$BIN"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# k8s.io/kubernetes replaces its staging modules with local folders; a module that requires it must
# replace each of them by the published staging version. Derive that list from kubernetes' own go.mod.
gomod=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
{
  echo "module cheops.local/kubetools"
  echo
  echo "go 1.26"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  grep -E '^\s*k8s.io/[a-z0-9-]+ => ./staging/src/' "$gomod" |
    awk -v v="$STAGING_VERSION" '{print "replace " $1 " => " $1 " " v}'
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
echo "kube-tools: resolving k8s.io/kubernetes $KUBE_VERSION" >&2
GOFLAGS=-mod=mod go mod tidy >&2
echo "kube-tools: building kube-apiserver (several minutes cold)" >&2
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$BIN/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
mv "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"
echo "$BIN"
