#!/usr/bin/env bash
# Builds the Kubernetes binaries the end-to-end tests run from the Go module proxy, once per version,
# into a cache outside the clone, and prints the Kubernetes bin folder on stdout:
#   $CACHE/kube-$KUBE_VERSION/bin   kube-apiserver; kube-controller-manager and kube-scheduler (a site
#                                   whose workloads really run); kubectl (the deploy manifests'
#                                   server-side dry run)
#   $CACHE/kwok-$KWOK_VERSION/bin   kwok, which plays the kubelet of fake nodes
#   $CACHE/kwok-$KWOK_VERSION/stages  kwok's "fast" node and pod Stage objects, copied from its module
#
# With arguments, only the tools named (kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok): `make run` needs only kube-apiserver for its demo sites.
#
#   CHEOPS_CACHE   cache root (default: $HOME/.cache/cheops)
#   KUBE_VERSION   k8s.io/kubernetes version (default: v1.35.4)
#   KWOK_VERSION   sigs.k8s.io/kwok version (default: v0.8.0)
set -euo pipefail
KUBE_VERSION=${KUBE_VERSION:-v1.35.4}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
STAGING_VERSION=v0${KUBE_VERSION#v1}
CACHE=${CHEOPS_CACHE:-$HOME/.cache/cheops}
BIN=$CACHE/kube-$KUBE_VERSION/bin
KWOK=$CACHE/kwok-$KWOK_VERSION
ALL=(kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)
WANT=("$@")
[ ${#WANT[@]} -gt 0 ] || WANT=("${ALL[@]}")
for tool in "${WANT[@]}"; do
  case " ${ALL[*]} " in *" $tool "*) ;; *) echo "kube-tools: unknown tool $tool (known: ${ALL[*]})" >&2; exit 2 ;; esac
done
wants() { case " ${WANT[*]} " in *" $1 "*) return 0 ;; esac; return 1; }
missing=()
for tool in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  wants "$tool" && [ ! -x "$BIN/$tool" ] && missing+=("$tool")
done
# Rough cold build times on two shared cores, for the message that says what is going on.
declare -A ESTIMATE=([kube-apiserver]="about 5 min" [kube-controller-manager]="about 3 min" [kube-scheduler]="under a minute" [kubectl]="a minute or two")

# kwok has no replace directives, so go install builds it in its own module. Its Stage objects are
# plain files of that module, copied beside the binary so that the tests need no module cache: the
# ones of its own "fast" set (kustomize/stage/fast), whose lease heartbeat keeps the node Ready for
# the node lifecycle controller.
KWOK_STAGES=(node/fast node/heartbeat-with-lease pod/fast)
if wants kwok && [ ! -x "$KWOK/bin/kwok" ]; then
  echo "kube-tools: building kwok $KWOK_VERSION (a minute or two cold)" >&2
  start=$SECONDS
  mkdir -p "$KWOK/bin"
  tmpbin=$(mktemp -d "$KWOK/bin.XXXXXX")
  GOBIN=$tmpbin GOFLAGS=-mod=mod CGO_ENABLED=0 go install -trimpath "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
  mv "$tmpbin/kwok" "$KWOK/bin/kwok"
  rmdir "$tmpbin"
  echo "kube-tools: kwok built in $((SECONDS - start))s" >&2
fi
if wants kwok && [ "$(cat "$KWOK/stages/.copied" 2>/dev/null)" != "${KWOK_STAGES[*]}" ]; then
  src=$(GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
  rm -rf "$KWOK/stages"
  mkdir -p "$KWOK/stages"
  for set in "${KWOK_STAGES[@]}"; do
    for f in "$src/kustomize/stage/$set"/*.yaml; do
      [ "$(basename "$f")" = kustomization.yaml ] || install -m 644 "$f" "$KWOK/stages/"
    done
  done
  echo "${KWOK_STAGES[*]}" > "$KWOK/stages/.copied"
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "$BIN"
  exit 0
fi
mkdir -p "$BIN"
total=$SECONDS
echo "kube-tools: building ${missing[*]} $KUBE_VERSION from the Go module proxy into $BIN, once; later runs use the cache" >&2
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
  echo "kube-tools: building $tool (${ESTIMATE[$tool]} cold)" >&2
  start=$SECONDS
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$BIN/$tool.tmp" "k8s.io/kubernetes/cmd/$tool" >&2
  mv "$BIN/$tool.tmp" "$BIN/$tool"
  echo "kube-tools: $tool built in $((SECONDS - start))s" >&2
done
echo "kube-tools: built ${missing[*]} in $(((SECONDS - total) / 60))m$(((SECONDS - total) % 60))s" >&2
echo "$BIN"
