#!/usr/bin/env bash
# Create (once) and activate the project's virtual environment in .venv.
# Re-installs when requirements.txt or pyproject.toml change. Source it: `. scripts/env.sh`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
stamp="$venv/.conlearn-installed"
want=$(cat "$root/requirements.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "conlearn: setting up $venv (first run only, ~2 min)" >&2
  python3 -m venv "$venv"
  (cd "$root" && "$venv/bin/pip" install -q --disable-pip-version-check -r requirements.txt) >&2
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
# Two shared cores: one thread per process unless a benchmark says otherwise.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
set +euo pipefail
