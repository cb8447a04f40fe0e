#!/usr/bin/env bash
# Installs the Debian 12 packages the project builds and runs with, and the Python packages of
# the Kubernetes manifest validator (deploy/k8s/validate). Idempotent and quiet: a machine that has
# everything installs nothing and prints nothing. Run as root (or with sudo available).
#   scripts/setup.sh            everything to build, test and run (the default)
#   scripts/setup.sh --runtime  only the shared libraries the built binaries load (the image's
#                               runtime stage; see Dockerfile)
#   scripts/setup.sh --cuda     the default, plus the `cuda` preset's LibTorch 2.11 (CUDA 13.0)
#                               from PyPI (scripts/setup_cuda.sh; needs the CUDA 13.0 toolkit)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=all
case "${1:-}" in
  "") ;;
  --runtime) MODE=runtime ;;
  --cuda) MODE=cuda ;;
  *) echo "usage: $0 [--runtime|--cuda]" >&2; exit 2 ;;
esac

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev python3-torch libopenblas0-openmp
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev libgloo-dev libcpp-httplib-dev
  nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libgoogle-glog-dev libgflags-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  prometheus python3-venv
  clang-14 libclang-rt-14-dev
)

# What `rlhf` and the service binaries link against (their NEEDED libraries' packages; apt
# brings the rest). libopenblas0-openmp makes OpenBLAS the BLAS that LibTorch loads.
RUNTIME_PACKAGES=(
  libtorch1.13 libopenblas0-openmp libgomp1
  libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623
  libprometheus-cpp-core1.0 libcpp-httplib0.11 libyaml-cpp0.7 libgoogle-glog0v6
)

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

# install_missing PKG...: apt-get install those not installed yet.
install_missing() {
  local missing=() p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then return 0; fi
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup: done" >&2
}

if [[ $MODE == runtime ]]; then
  install_missing "${RUNTIME_PACKAGES[@]}"
  exit 0
fi

install_missing "${PACKAGES[@]}"

# The manifest validator's Python packages (tests/deploy/k8s_manifests_test.sh), pinned in its
# requirements.txt, in a venv of its own (deploy/k8s/validate/venv.sh says where): made again
# when it is missing or was made from other requirements.
# shellcheck source=deploy/k8s/validate/venv.sh
source "$ROOT/deploy/k8s/validate/venv.sh"
k8s_validate_venv_setup "$ROOT/deploy/k8s/validate/requirements.txt"

if [[ $MODE == cuda ]]; then
  bash "$ROOT/scripts/setup_cuda.sh"
fi
