#!/usr/bin/env bash
# Render the chart into deploy/helm/rendered/ for review (`--check`: fail if they are stale).
# Uses $HELM, else the pinned helm v3 that `cargo xtask setup` puts in .tools/bin, else `helm` on
# PATH; nothing here talks to a cluster.
set -euo pipefail
cd "$(dirname "$0")"
helm="${HELM:-}"
if [ -z "$helm" ]; then
  if [ -x ../../.tools/bin/helm ]; then helm="$(cd ../.. && pwd)/.tools/bin/helm"; else helm=helm; fi
fi
check=false
[ "${1:-}" = "--check" ] && check=true
out=rendered
$check && out=$(mktemp -d)
mkdir -p "$out"

render() { # NAME ARGS…: one rendering, with a fixed run id so the output is reproducible
  local name=$1; shift
  "$helm" template chaos valkey-chaos --namespace staging-chaos --set runId=example "$@" \
    > "$out/$name.yaml"
}
# The defaults: 4 agents, a Secret made from values, the shared claim, the merge Job.
render default --set target.url=redis://valkey.staging.svc:6379
# An existing Secret and ConfigMap, TLS with a private CA, OTLP, destructive faults allowed,
# results in emptyDir (no merge Job: copy and merge by hand).
render emptydir-destructive \
  --set agents=8 \
  --set target.existingSecret=valkey-staging --set target.caSecret=valkey-staging-ca \
  --set scenarios.existingConfigMap=chaos-scenarios \
  --set otlp.endpoint=http://otel-collector.observability:4317 \
  --set allowDestructive=true --set duration=10m --set seed=42 \
  --set 'thresholds={cache.get.p99 < 5ms}' \
  --set results.persistence=emptyDir

if $check; then
  diff -ru rendered "$out" || { echo "deploy/helm/rendered is stale: run deploy/helm/render.sh" >&2; exit 1; }
  rm -rf "$out"
  echo "deploy/helm/rendered is up to date"
fi
