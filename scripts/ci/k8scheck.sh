#!/usr/bin/env bash
# Strict validation of the Kubernetes manifests without a cluster (run by .ci/run, or by hand:
# `bash scripts/ci/k8scheck.sh`). tools/k8scheck is built with Go from the module proxy, once per
# version of its sources, into the cache; its unit tests run whenever it is built. Then it checks
# deploy/kubernetes (every file, and the kustomize build of every kustomization, in process), and
# each fixture under tools/k8scheck/testdata/bad must be refused with the failure its first line
# names, so a checker that accepted everything could not pass.
set -euo pipefail
cd "$(dirname "$0")/../.."

src=tools/k8scheck
hash=$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-16)
bin="${XDG_CACHE_HOME:-$HOME/.cache}/pulling-agent/k8scheck-$hash/k8scheck"

if [ -x "$bin" ]; then
  echo "k8scheck: using cached $bin"
else
  echo "k8scheck: building into $bin (once per version of $src)"
  command -v go >/dev/null || { echo "k8scheck: Go is needed to build $src" >&2; exit 1; }
  (cd "$src" && go vet ./... && go test ./...)
  mkdir -p "$(dirname "$bin")"
  (cd "$src" && go build -trimpath -o "$bin.tmp" .)
  mv -f "$bin.tmp" "$bin" # atomic: an interrupted build never leaves a broken binary
fi

"$bin" deploy/kubernetes

refused=0
for fixture in "$src"/testdata/bad/*; do
  first=$fixture
  [ -d "$fixture" ] && first=$fixture/kustomization.yaml
  want=$(sed -n '1s/^# want: //p' "$first")
  [ -n "$want" ] || { echo "k8scheck: $first must start with '# want: <expected failure>'" >&2; exit 1; }
  if output=$("$bin" -q "$fixture" 2>&1); then
    echo "k8scheck ACCEPTED $fixture, which must fail with: $want" >&2
    exit 1
  fi
  if ! grep -qF -- "$want" <<<"$output"; then
    echo "k8scheck refused $fixture, but not with: $want" >&2
    echo "$output" >&2
    exit 1
  fi
  refused=$((refused + 1))
done
echo "k8scheck: the shipped manifests pass; $refused broken fixtures are refused as expected"
