#!/usr/bin/env bash
# Installs the Go tools the build uses (staticcheck, the temporal CLI) once per version into a cache
# outside the clone, and prints the bin folder; chromium, the headless browser of the status page's
# end-to-end test, is Debian's package (needs root, installed once). Usage:
# scripts/tools.sh [staticcheck] [temporal] [chromium]
set -euo pipefail
CACHE=${CHEOPS_CACHE:-$HOME/.cache/cheops}
STATICCHECK_VERSION=${STATICCHECK_VERSION:-v0.8.2}
TEMPORAL_CLI_VERSION=${TEMPORAL_CLI_VERSION:-v1.5.1}
for tool in "$@"; do
  case "$tool" in
    staticcheck) pkg=honnef.co/go/tools/cmd/staticcheck; v=$STATICCHECK_VERSION ;;
    temporal) pkg=github.com/temporalio/cli/cmd/temporal; v=$TEMPORAL_CLI_VERSION ;;
    chromium)
      if ! command -v chromium >/dev/null 2>&1; then
        echo "tools.sh: installing Debian's chromium" >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 chromium) >&2
      fi
      dirname "$(command -v chromium)"
      continue ;;
    *) echo "tools.sh: unknown tool $tool" >&2; exit 2 ;;
  esac
  bin=$CACHE/$tool-$v/bin
  if [ ! -x "$bin/$tool" ]; then
    echo "tools.sh: installing $pkg@$v" >&2
    GOBIN=$bin go install "$pkg@$v" >&2
  fi
  echo "$bin"
done
