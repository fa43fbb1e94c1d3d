#!/usr/bin/env bash
# The peers' own environment (.venv-peers, gitignored): the project plus SMAC and syne-tune,
# apart from .venv because their pins (ConfigSpace, dask, xgboost, numpy) may clash with ours.
#     bash bench/peers/setup.sh          # ≈ 1–2 min from a warm pip cache
#     WITH_PYRFR=1 bash bench/peers/setup.sh   # also SMAC's optional pyrfr forest (a C++ build)
#     .venv-peers/bin/python bench/peers/run.py
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=$(realpath -m "${VENV:-.venv-peers}")
python3 -m venv "$VENV"
pip=("$VENV/bin/pip" install -q)
"${pip[@]}" --upgrade pip
"${pip[@]}" torch==2.13.0
"${pip[@]}" -e '.[test]'
"${pip[@]}" 'smac==2.4.*' 'syne-tune==0.16.*'
if [[ ${WITH_PYRFR:-0} == 1 ]]; then
  # SMAC 2.4's default forest is scikit-learn's; pyrfr (extra `smac[pyrfr]`) ships only an
  # sdist that runs swig. swig's PyPI wheel provides the binary, but its entry script imports
  # the venv's `swig` module, which pip's isolated build env hides: build without isolation.
  "${pip[@]}" swig setuptools wheel
  PATH="$VENV/bin:$PATH" "${pip[@]}" --no-build-isolation 'pyrfr>=0.9.0'
fi
"$VENV/bin/python" - <<'PY'
from importlib.metadata import PackageNotFoundError, version
for name in ("smac", "ConfigSpace", "syne-tune", "pyrfr", "optuna", "numpy"):
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        print(f"{name}: not installed")
PY
