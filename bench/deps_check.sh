#!/usr/bin/env bash
# What would a newer Ray / Optuna / W&B break? A weekly-style check, run by hand (not in CI).
#
# pyproject.toml admits only the minors the suite has passed on (engine/libcompat.py), so a new
# release on the registry never enters a fresh install untested. This script installs the project in
# a throwaway venv, then upgrades the bounded libraries to the newest releases on the registry (past
# the bounds), runs the private-attribute tests and quick end-to-end sweeps, and prints one line per
# library: pinned range, newest release, and whether the checks pass on it. When they do, record the
# minor in WRITTEN_AGAINST / NEWEST_TESTED, raise the bound, and run the whole suite once.
#
#   bash bench/deps_check.sh            # all bounded libraries at their newest release
#   bash bench/deps_check.sh optuna     # only those named
set -uo pipefail
cd "$(dirname "$0")/.."
libs=("$@")
[ ${#libs[@]} -gt 0 ] || libs=("ray[tune]" optuna wandb)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "throwaway venv in $tmp"
python3 -m venv "$tmp/venv"
pip="$tmp/venv/bin/pip"
"$pip" install -q --upgrade pip
"$pip" install -q torch==2.13.0
"$pip" install -q -e '.[test]' || { echo "the project itself does not install"; exit 1; }
before=$("$pip" list --format=freeze)
# pip warns that archer-sweep's bounds are broken: that is the point here
"$pip" install -q --upgrade "${libs[@]}" 2>&1 | grep -v -i "incompatible\|dependency conflicts\|requires" || true
after=$("$pip" list --format=freeze)
checks=(
  tests/test_libcompat.py tests/test_searcher.py tests/test_study.py tests/test_sampler.py
  tests/test_wandb_log.py "tests/test_replay.py::test_replay_sweep_on_the_shipped_table_equals_backtest"
  "tests/test_cli_run.py::test_ctrl_c_then_resume_finishes_without_rerunning_finished_trials"
)
"$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider -x "${checks[@]}" > "$tmp/pytest.log" 2>&1
rc=$?
echo
printf '%-10s %-16s %-12s %-12s\n' library pyproject "was" "now"
for lib in "${libs[@]}"; do
  name=${lib%%[*}
  spec=$(grep -o "\"$name\(\[[a-z]*\]\)\?[><=][^\"]*\"" pyproject.toml | head -1 | tr -d '"')
  was=$(echo "$before" | grep -i "^$name==" | cut -d= -f3)
  now=$(echo "$after" | grep -i "^$name==" | cut -d= -f3)
  printf '%-10s %-16s %-12s %-12s\n' "$name" "${spec#"$lib"}" "$was" "$now"
done
echo
tail -n 25 "$tmp/pytest.log"
if [ $rc -eq 0 ]; then
  echo "deps_check: the checks pass on the newest releases; record them in engine/libcompat.py, raise the bounds, run the suite"
else
  echo "deps_check: the checks FAIL on the newest releases (above): adapt engine/libcompat.py before raising a bound"
fi
exit $rc
