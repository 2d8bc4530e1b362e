#!/usr/bin/env bash
# Fails when a tracked file over 1 MiB lives outside a testdata/ folder: build outputs and data
# dumps do not belong in the repository (a 229 MB binary once slipped in with a README change).
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$((1024 * 1024))
bad=0
while IFS= read -r -d '' f; do
  case "/$f" in */testdata/*) continue ;; esac
  [ -f "$f" ] || continue
  size=$(stat -c %s "$f")
  if [ "$size" -gt "$limit" ]; then
    echo "tracked file over 1 MiB outside testdata/: $f ($size bytes)"
    bad=1
  fi
done < <(git ls-files -z)
exit "$bad"
