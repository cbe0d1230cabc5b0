#!/usr/bin/env bash
# Build every image the chart, the examples and the docs name, and print each one's size.
#
#   hack/images/build.sh [IMAGE...]     (no argument: all of them; `make images` runs this)
#   hack/images/build.sh --list         (the image names, one line; builds nothing)
#
# The kit's own images (operator, predictors with torch and with ONNX Runtime only,
# transformer, the evaluation job) build from their Dockerfiles on the base hack/images/base.sh
# gives. KServe's
# controller manager, its metrics proxy and its InferenceGraph router, and the pod sandbox
# (pause) image, are built from the pinned tool set (hack/tools/build.sh: their own sources) into
# images of one static binary each, under the names KServe's and Kubernetes' own releases use,
# so the configuration that names them needs no change. So are the backends the Gateway API
# conformance suite deploys (tests/gateway): its echo server, from the pinned gateway-api
# module, and a CoreDNS (the tool set's) under the tag its base manifests name. Docker's layer
# cache makes a rebuild with nothing changed take seconds.
#
# Each image's size is printed on stdout, beside its target; progress goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/hack/images
registry=${IMAGE_REGISTRY:-ghcr.io/inference-pipelines}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml" | head -n 1)
log() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# shellcheck source=../tools/versions.env
source "$root/hack/tools/versions.env"
# PIPELINE_KSERVE=floor: KServe's images at the oldest version the kit supports, from the tool
# set hack/tools/build.sh assembles for it.
[[ ${PIPELINE_KSERVE:-newest} == floor ]] && KSERVE_VERSION=$KSERVE_FLOOR

declare -A images=(
  [operator]="$registry/operator:$version"
  [predictors]="$registry/predictors:$version"
  [predictors-onnx]="$registry/predictors:$version-onnx"
  [transformer]="$registry/transformer:$version"
  [evaluation]="$registry/evaluation:$version"
  [kserve-controller]="kserve/kserve-controller:$KSERVE_VERSION"
  [router]="kserve/router:$KSERVE_VERSION"
  [kube-rbac-proxy]="quay.io/brancz/kube-rbac-proxy:$KUBE_RBAC_PROXY_VERSION"
  [pause]="registry.k8s.io/pause:3.10"
  # The names the conformance suite's base manifests (sigs.k8s.io/gateway-api@GATEWAY_API_VERSION,
  # conformance/base/manifests.yaml) give its images.
  [gateway-echo]="gcr.io/k8s-staging-gateway-api/echo-basic:v20240412-v1.0.0-394-g40c666fd"
  [gateway-coredns]="registry.k8s.io/coredns/coredns:v1.12.2"
)
order=(operator predictors-onnx transformer evaluation predictors kserve-controller router kube-rbac-proxy pause
  gateway-echo gateway-coredns)
if [[ ${1:-} == --list ]]; then
  for image in "${order[@]}"; do printf '%s ' "${images[$image]}"; done; echo; exit 0
fi
wanted=("$@")
[[ ${#wanted[@]} -gt 0 ]] || wanted=("${order[@]}")
tools=$(bash "$root/hack/tools/build.sh" | tail -n 1)
base=$(bash "$here/base.sh" | tail -n 1)

# An image of one static binary and nothing else (KServe's manager and router, the pod
# sandbox), run as non-root (or as USER): what upstream ships on distroless/static, without the
# base.
static_image() {
  local image=$1 source=$2 binary=$3 user=${4:-65532:65532} context
  context=$(mktemp -d)
  if [[ $source == *.c ]]; then
    gcc -Os -static -o "$context/$binary" "$source" && strip "$context/$binary"
  else
    cp "$source" "$context/$binary"
  fi
  printf 'FROM scratch\nCOPY %s /%s\nUSER %s\nENTRYPOINT ["/%s"]\n' \
    "$binary" "$binary" "$user" "$binary" | docker build --quiet -f - -t "$image" "$context" >&2
  rm -rf "$context"
}

# The kit's images: Dockerfile, and build arguments beside the base.
kit_image() {
  local image=$1 dockerfile=$2; shift 2
  docker build --quiet --build-arg BASE_IMAGE="$base" "$@" -f "$root/$dockerfile" -t "$image" \
    "$root" >&2
}

build() {
  local image=$1 started=$SECONDS context
  log "building ${images[$image]}"
  case $image in
    operator) kit_image "${images[$image]}" operator/Dockerfile ;;
    predictors) kit_image "${images[$image]}" predictors/Dockerfile ;;
    predictors-onnx) kit_image "${images[$image]}" predictors/Dockerfile --build-arg EXTRA=onnx ;;
    transformer) kit_image "${images[$image]}" transformers_/Dockerfile ;;
    evaluation) kit_image "${images[$image]}" evaluation/Dockerfile ;;
    kserve-controller) static_image "${images[$image]}" "$tools/bin/kserve-manager" manager ;;
    router) static_image "${images[$image]}" "$tools/bin/router" router ;;
    kube-rbac-proxy) static_image "${images[$image]}" "$tools/bin/kube-rbac-proxy" kube-rbac-proxy ;;
    # Kubernetes' own pause container, from the pinned module's source.
    pause) static_image "${images[$image]}" "$tools/pause/pause.c" pause ;;
    gateway-echo) static_image "${images[$image]}" "$tools/bin/echo-basic" echo-basic ;;
    # Root: the suite's Deployment binds port 53 with NET_BIND_SERVICE only, which a non-root
    # user does not get without file capabilities. (Its Corefile serves UDPRoute tests, which
    # tests/gateway does not run.)
    gateway-coredns) static_image "${images[$image]}" "$tools/bin/coredns" coredns 0:0 ;;
    *) log "unknown image $image (one of: ${order[*]})"; return 1 ;;
  esac
  log "built ${images[$image]} in $((SECONDS - started))s"
}

for image in "${wanted[@]}"; do build "$image"; done
# Images a rebuild superseded (untagged, no child) go: one copy of each image stays on disk.
# (Every Dockerfile is one stage, so the layer cache is the tagged images' own parents.)
docker image prune --force >/dev/null
# Sizes, beside the targets on a slim base (the torch image carries CUDA's libraries).
declare -A targets=([operator]=250 [predictors-onnx]=600 [transformer]=600 [evaluation]=250)
printf '%-52s %9s %s\n' IMAGE "SIZE (MB)" TARGET
for image in "${wanted[@]}"; do
  size=$(docker image inspect --format '{{.Size}}' "${images[$image]}" | awk '{printf "%.0f", $1 / 1e6}')
  target=${targets[$image]:-}
  verdict=${target:+$( ((size < target)) && echo "< $target ok" || echo "< $target MISSED")}
  printf '%-52s %9s %s\n' "${images[$image]}" "$size" "$verdict"
done
