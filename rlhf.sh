#!/usr/bin/env bash
# The one command for users: installs the Debian packages on first use, builds, and runs the
# `rlhf` CLI with the given arguments (e.g. ./rlhf.sh generate --help).
set -euo pipefail
root="$(cd "$(dirname "$0")" && pwd)"
bash "$root/scripts/build.sh" --target rlhf >&2
exec "$root/build/release/cli/rlhf" "$@"
