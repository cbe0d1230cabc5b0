#!/usr/bin/env bash
# Build (or reuse) the pinned tool set and print the directory that holds it.
#
# Every tool is built from its wrapper Go module (hack/tools/<tool>/go.mod + go.sum) with
# GOTOOLCHAIN=local, so nothing but the Go module proxy is reached. Each tool is cached under
# $PIPELINE_TOOLS_CACHE/store/<tool>-<key>, the key being a hash of its wrapper and of this
# script, so a version bump rebuilds that tool only. The tool set (bin/, kserve-crds/,
# kserve-config/, gateway-api-crds/ and traefik-crds/) is assembled under $PIPELINE_TOOLS_CACHE/sets/<key>;
# its path is the last line printed on stdout.
# Progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${PIPELINE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inference-pipeline-tools}
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -trimpath -buildvcs=false" CGO_ENABLED=0
export GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build
mkdir -p "$cache/store" "$cache/sets" "$GOMODCACHE" "$GOCACHE"
# PIPELINE_KSERVE=floor assembles the set with the oldest KServe the kit supports (its own
# smaller test job); the default is the newest.
case ${PIPELINE_KSERVE:-newest} in
  newest) kserve=kserve ;;
  floor) kserve=kserve-floor KSERVE_VERSION=$KSERVE_FLOOR ;;
  *) echo "PIPELINE_KSERVE is newest or floor, not ${PIPELINE_KSERVE}" >&2; exit 2 ;;
esac

log() { printf '[tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# A tool's cache key: its wrapper module and how it is built.
key_of() {
  { cat "$here/$1/go.mod" "$here/$1/go.sum"
    echo "${ldflags[$1]} ${packages[$1]} ${outputs[$1]:-}${tags[$1]:+ tags=${tags[$1]}}${tests[$1]:+ tests=${tests[$1]}}"; } \
    | sha256sum | cut -c1-12
}

# Flags that stamp versions into the binaries (kwokctl picks apiserver flags by version).
kube_ldflags() {
  local v=$KUBERNETES_VERSION minor
  minor=$(echo "$v" | cut -d. -f2)
  local flags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    flags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

# Helm's default Kubernetes version (`helm template`, `helm lint`, a chart's kubeVersion check)
# is stamped at build time from the client-go it is built with, as Helm's own release does.
helm_ldflags() {
  local minor
  minor=$(sed -nE 's#^\s*k8s.io/client-go v0\.([0-9]+)\..*#\1#p' "$here/helm/go.mod")
  local flags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    flags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$minor"
  done
  echo "$flags"
}

declare -A ldflags=(
  [kubernetes]="$(kube_ldflags)"
  [etcd]="-s -w"
  [kwok]="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBERNETES_VERSION#v}"
  [helm]="$(helm_ldflags)"
  [kserve]="-s -w"
  [kserve-floor]="-s -w"
  [prometheus]="-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}"
  [coredns]="-s -w"
  [kube-rbac-proxy]="-s -w"
  [traefik]="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=${TRAEFIK_VERSION#v} -X github.com/traefik/traefik/v3/pkg/version.BuildDate=1970-01-01T00:00:00Z"
  [gateway-api]="-s -w"
)
declare -A packages=(
  [kubernetes]="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy"
  [etcd]="go.etcd.io/etcd/server/v3"
  [kwok]="sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl"
  [helm]="helm.sh/helm/v3/cmd/helm"
  [kserve]="github.com/kserve/kserve/cmd/router github.com/kserve/kserve/cmd/manager"
  [kserve-floor]="github.com/kserve/kserve/cmd/router github.com/kserve/kserve/cmd/manager"
  [prometheus]="github.com/prometheus/prometheus/cmd/prometheus"
  [coredns]="github.com/coredns/coredns"
  [kube-rbac-proxy]="github.com/brancz/kube-rbac-proxy/cmd/kube-rbac-proxy"
  [traefik]="github.com/traefik/traefik/v3/cmd/traefik"
  [gateway-api]="sigs.k8s.io/gateway-api/conformance/echo-basic"
)
# Build tags: Prometheus without its cloud service discoveries (static, file and Kubernetes SD
# remain: the local cluster's Prometheus finds the stage pods the way a user's would).
declare -A tags=([prometheus]="remove_all_sd,enable_kubernetes_sd")
# go build names a binary after its package; some are renamed (old name:new name).
declare -A outputs=([etcd]="server:etcd" [kserve]="manager:kserve-manager" [kserve-floor]="manager:kserve-manager")
# Test binaries (`go test -c`) some tools bring (package:binary): the Gateway API conformance
# suite, run against the harness's Gateway API implementation.
declare -A tests=([gateway-api]="sigs.k8s.io/gateway-api/conformance:gateway-api-conformance")
order=(kubernetes etcd kwok helm "$kserve" prometheus coredns kube-rbac-proxy traefik gateway-api)

build_tool() {
  local tool=$1 dir
  dir="$cache/store/$tool-$(key_of "$tool")"
  if [[ -f $dir/.complete ]]; then
    log "$tool: cached ($dir)"
  else
    log "$tool: building ${packages[$tool]} (cold builds take minutes)"
    local started=$SECONDS
    rm -rf "$dir"; mkdir -p "$dir/bin"
    # shellcheck disable=SC2086
    (cd "$here/$tool" && go build -tags "${tags[$tool]:-}" -ldflags "${ldflags[$tool]}" \
      -o "$dir/bin/" ${packages[$tool]})
    for test in ${tests[$tool]:-}; do
      (cd "$here/$tool" && go test -c -ldflags "${ldflags[$tool]}" -o "$dir/bin/${test#*:}" "${test%%:*}")
    done
    for rename in ${outputs[$tool]:-}; do mv "$dir/bin/${rename%%:*}" "$dir/bin/${rename#*:}"; done
    touch "$dir/.complete"
    log "$tool: built in $((SECONDS - started))s"
  fi
  echo "$dir"
}

# The set's key: its tools' keys and the layout version of what is assembled beside them.
set_layout=6
set_key=$({ echo "$set_layout"; for t in "${order[@]}"; do key_of "$t"; done; } | sha256sum | cut -c1-12)
set_dir="$cache/sets/$set_key"
# A set is reusable when complete and none of its links dangles (a store entry was removed).
set_ok() { [[ -f $set_dir/.complete ]] && ! find "$set_dir/bin" -xtype l | grep -q .; }
if ! set_ok; then
  rm -rf "$set_dir"; mkdir -p "$set_dir/bin" "$set_dir/kserve-crds"
  for tool in "${order[@]}"; do
    store=$(build_tool "$tool")
    ln -sf "$store"/bin/* "$set_dir/bin/"
  done
  # KServe's CRDs and install manifests, used as they are, from the same pinned module the
  # router and manager are built from: the CRDs the manager watches, its configuration file,
  # webhook configurations, ClusterServingRuntimes and the default ClusterStorageContainer.
  kserve_dir=$(cd "$here/$kserve" && go mod download -json "github.com/kserve/kserve@$KSERVE_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  full=$kserve_dir/config/crd/full
  cp "$full"/serving.kserve.io_{inferenceservices,inferencegraphs,servingruntimes,clusterservingruntimes,trainedmodels}.yaml \
    "$full/clusterstoragecontainer/serving.kserve.io_clusterstoragecontainers.yaml" "$set_dir/kserve-crds/"
  mkdir -p "$set_dir/kserve-config"
  cp -R "$kserve_dir/config/configmap" "$kserve_dir/config/webhook" "$kserve_dir/config/runtimes" \
    "$kserve_dir/config/storagecontainers" "$kserve_dir/charts" "$set_dir/kserve-config/"
  chmod -R u+w "$set_dir/kserve-config"
  # Kubernetes' pod sandbox (pause), built into an image by hack/images/build.sh.
  kube_dir=$(cd "$here/kubernetes" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$set_dir/pause"
  cp "$kube_dir/build/pause/linux/pause.c" "$set_dir/pause/"
  # The Gateway API CRDs, both channels, from the module the conformance suite is built from.
  gateway_dir=$(cd "$here/gateway-api" && go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$set_dir/gateway-api-crds"
  cp -R "$gateway_dir/config/crd/standard" "$gateway_dir/config/crd/experimental" "$set_dir/gateway-api-crds/"
  chmod -R u+w "$set_dir/gateway-api-crds"
  rm -f "$set_dir"/gateway-api-crds/*/kustomization.yaml
  # Traefik's own CRDs (TraefikService: its mirroring), from the module traefik is built from.
  traefik_dir=$(cd "$here/traefik" && go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$set_dir/traefik-crds"
  cp "$traefik_dir/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml" \
    "$set_dir/traefik-crds/traefik.io.yaml"
  chmod -R u+w "$set_dir/traefik-crds"
  { grep -E '^[A-Z_]+=' "$here/versions.env" | grep -v '^KSERVE_VERSION='
    echo "KSERVE_VERSION=$KSERVE_VERSION"; } > "$set_dir/versions.env"
  touch "$set_dir/.complete"
  log "tool set ready: $set_dir ($(du -shL "$set_dir/bin" | cut -f1) of binaries)"
  # The set holds all it needs: the Go module and build caches (GBs) are not kept; a version
  # bump downloads again what it builds.
  go clean -modcache -cache
  rm -rf "$cache/go"
fi
echo "$set_dir"
