# shellcheck shell=bash
# Sourced by scripts/setup.sh and tests/deploy/k8s_manifests_test.sh: where the manifest
# validator's Python virtual environment lives (outside the work tree, shared by its clones;
# RLHF_K8S_VALIDATE_VENV overrides), and how to make it.
K8S_VALIDATE_VENV=${RLHF_K8S_VALIDATE_VENV:-${XDG_CACHE_HOME:-${HOME:-~}/.cache}/rlhf/k8s-validate-venv}
K8S_VALIDATE_PYTHON=$K8S_VALIDATE_VENV/bin/python

# k8s_validate_venv_setup REQUIREMENTS: (re)makes the venv with the Debian Python and installs
# REQUIREMENTS when the venv is missing or broken or was made from other requirements (a copy
# of them is its stamp). Quiet when there is nothing to do.
k8s_validate_venv_setup() {
  local req=$1 stamp=$K8S_VALIDATE_VENV/requirements.installed.txt
  if [[ -x $K8S_VALIDATE_PYTHON ]] && "$K8S_VALIDATE_PYTHON" -c '' 2>/dev/null && cmp -s "$req" "$stamp"; then
    return 0
  fi
  if [[ -e $K8S_VALIDATE_VENV && ! -f $K8S_VALIDATE_VENV/pyvenv.cfg ]]; then
    echo "setup: $K8S_VALIDATE_VENV exists and is not a Python venv: move it away" >&2
    return 1
  fi
  echo "setup: installing the Python packages of deploy/k8s/validate into $K8S_VALIDATE_VENV" >&2
  rm -rf "$K8S_VALIDATE_VENV"
  mkdir -p "$(dirname "$K8S_VALIDATE_VENV")"
  /usr/bin/python3 -m venv "$K8S_VALIDATE_VENV"
  "$K8S_VALIDATE_PYTHON" -m pip install -q --disable-pip-version-check --no-input -r "$req"
  cp "$req" "$stamp"
}
