#!/usr/bin/env bash
# The `cuda` preset's LibTorch (run by `scripts/setup.sh --cuda`, after the Debian packages):
# installs scripts/requirements-cuda.txt (torch 2.11.0+cu130 from PyPI and the three CUDA
# libraries the toolkit lacks, pinned by hash) into the venv build/venv-cuda, with
# /usr/bin/python3. Idempotent and quiet: a venv whose stamp is newer than the requirements file
# installs nothing. Checks that the CUDA 13.0 toolkit is there (nvcc, the libraries).
#
# The wheel carries protobuf 3.13's headers (torch/include/google) and protoc (torch/bin); they
# would shadow the system protobuf 3.21 that our generated code is built against, so they are
# deleted (LibTorch's own headers do not include them).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$ROOT/build/venv-cuda
REQ=$ROOT/scripts/requirements-cuda.txt
STAMP=$VENV/.rlhf-installed
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}

if [[ ! -x $CUDA_HOME/bin/nvcc ]]; then
  echo "setup --cuda: no CUDA toolkit at $CUDA_HOME (nvcc missing): install the CUDA 13.0 toolkit or set CUDA_HOME" >&2
  exit 1
fi
if ! "$CUDA_HOME/bin/nvcc" --version | grep -q 'release 13\.0'; then
  echo "setup --cuda: $CUDA_HOME is not CUDA 13.0 (torch 2.11.0+cu130 needs it):" >&2
  "$CUDA_HOME/bin/nvcc" --version | tail -n 2 >&2
  exit 1
fi

if [[ -f $STAMP && $STAMP -nt $REQ ]]; then exit 0; fi

echo "setup: installing the cuda preset's LibTorch into build/venv-cuda (about 760 MB from PyPI)" >&2
start=$(date +%s)
rm -rf "$VENV"
/usr/bin/python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --no-deps --require-hashes --only-binary=:all: -r "$REQ"
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -rf "$SITE/torch/include/google" "$SITE"/torch/bin/protoc*
ln -sfn "$SITE" "$VENV/site-packages"  # a fixed path for CMakePresets.json
touch "$STAMP"
echo "setup: done ($(( $(date +%s) - start )) s)" >&2
