#!/usr/bin/env bash
# The test suite (slow checks excluded; they live in benchmarks/). Extra args go to pytest.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$(dirname "$0")/.."
exec python -m pytest -q "$@"
