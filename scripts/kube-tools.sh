#!/usr/bin/env bash
# Builds the Kubernetes binaries the end-to-end tests run (kube-apiserver, and kubectl for the
# deploy manifests' server-side dry run) from the Go module proxy, once per version, into a cache
# outside the clone. Prints the bin folder on stdout.
#
#   CHEOPS_CACHE   cache root (default: $HOME/.cache/cheops)
#   KUBE_VERSION   k8s.io/kubernetes version (default: v1.35.4)
set -euo pipefail
KUBE_VERSION=${KUBE_VERSION:-v1.35.4}
STAGING_VERSION=v0${KUBE_VERSION#v1}
CACHE=${CHEOPS_CACHE:-$HOME/.cache/cheops}
BIN=$CACHE/kube-$KUBE_VERSION/bin
TOOLS=(kube-apiserver kubectl)
missing=()
for tool in "${TOOLS[@]}"; do
  [ -x "$BIN/$tool" ] || missing+=("$tool")
done
if [ ${#missing[@]} -eq 0 ]; then
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
{
  echo "//go:build tools"
  echo
  echo "package tools"
  echo
  for tool in "${missing[@]}"; do
    echo "import _ \"k8s.io/kubernetes/cmd/$tool\""
  done
} > tools.go
echo "kube-tools: resolving k8s.io/kubernetes $KUBE_VERSION" >&2
GOFLAGS=-mod=mod go mod tidy >&2
for tool in "${missing[@]}"; do
  echo "kube-tools: building $tool (minutes cold)" >&2
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$BIN/$tool.tmp" "k8s.io/kubernetes/cmd/$tool" >&2
  mv "$BIN/$tool.tmp" "$BIN/$tool"
done
echo "$BIN"
