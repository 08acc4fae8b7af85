#!/usr/bin/env bash
# The main job on its embedded default. Usage: bash scripts/demo.sh [--out DIR]
set -euo pipefail
. "$(dirname "$0")/env.sh"
exec conlearn demo "$@"
