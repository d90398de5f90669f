#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then runs every check.
#
#   ./scripts/test.sh                    everything (what CI runs)
#   ./scripts/test.sh --no-compliance    skip the Autobahn runs (about 3 minutes)
#   ./scripts/test.sh -- tests/interop -k close     only pytest, with these arguments
#
# Steps: .venv (Python >= 3.11) with `pip install -e .[test,speed,redis,docs]`; Node's `ws`
# for the interop tests (npm ci in tests/interop/node); wstest for Autobahn
# (compliance/install_wstest.sh); then ruff check, ruff format --check, mypy --strict, the docs
# site (scripts/docs.sh), pytest, the packages (scripts/package_check.sh), and the
# Autobahn|Testsuite on both sides (compliance/run_autobahn.py). pytest and Autobahn run once
# with the compiled accelerator and once with HUBBUB_NO_EXTENSIONS=1 (pure Python).
# Every step runs even when an earlier one failed; the exit status is 1 if any failed.
#
# Environment:
#   CI=true                    also sets HUBBUB_REQUIRE_PEERS=1: a skipped peer test
#                              (Node, wstest, ...) fails instead (see tests/conftest.py), and
#                              a missing peer install fails the run
#   HUBBUB_AUTOBAHN_DEFLATE=1  run all 216 permessage-deflate cases (12.*, 13.*; 30+ min)
#                              instead of one or two per group
#   HUBBUB_TEST_MODES          which accelerator modes to run (default: "accelerated pure")
#   PYTHON                     the Python used to create .venv
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
root="$(pwd)"
# shellcheck source=scripts/venv.sh
source scripts/venv.sh

compliance=1
only_pytest=0
pytest_args=()
while (($#)); do
  case "$1" in
    --no-compliance) compliance=0 ;;
    --) shift; only_pytest=1; pytest_args=("$@"); break ;;
    -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [[ "${CI:-}" == "true" ]]; then
  export HUBBUB_REQUIRE_PEERS=1
fi
require_peers="${HUBBUB_REQUIRE_PEERS:-0}"

failed=()
passed=()
step() { # step NAME COMMAND...: run, record, never abort
  local name="$1"
  shift
  printf '\n=== %s\n' "$name"
  if "$@"; then
    passed+=("$name")
  else
    echo "=== FAILED: $name" >&2
    failed+=("$name")
  fi
}

# --- installs ------------------------------------------------------------------------------
# speed: uvloop, so that the tests that run hubbub on uvloop run too; redis: the hub and its
# Redis broker (hub deps included); docs: mkdocs for the "docs" step.
extras=test,speed,redis,docs
ensure_venv "$extras" || { echo "could not set up .venv" >&2; exit 2; }
py="$root/.venv/bin/python"

# The Node peers: ws (tests/interop/node) and socket.io v4 (benchmarks/socketio, the hub
# benchmark's side-by-side server, whose smoke test runs in the suite).
install_node_peers() {
  local dir
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "node/npm not found: the Node peer tests will skip (.ci/run installs them)" >&2
    [[ "$require_peers" != "1" ]]
    return
  fi
  for dir in "$root/tests/interop/node" "$root/benchmarks/socketio"; do
    # npm ci only when the lock file changed since the last install.
    if [[ -f "$dir/node_modules/.package-lock.json" && \
          "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]]; then
      continue
    fi
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || return 1
  done
}
step "install Node peers (ws, socket.io)" install_node_peers

# wstest: for the Autobahn runs and for tests/interop/test_autobahn_quick.py.
wstest_ok=0
if bash compliance/install_wstest.sh >/dev/null; then
  wstest_ok=1
else
  echo "wstest could not be installed: the Autobahn checks will skip" >&2
  [[ "$require_peers" == "1" ]] && failed+=("install wstest")
fi

# Which accelerator modes to test. The C accelerator is optional at install time, so check
# that it really is there when it should be: otherwise both runs would test pure Python.
modes="${HUBBUB_TEST_MODES:-accelerated pure}"
check_accelerator() {
  if [[ -f src/hubbub/_speedups.c ]] && [[ "$modes" == *accelerated* ]]; then
    "$py" -c 'import hubbub.speedups as s, sys; sys.exit(not s.ACCELERATED)' ||
      { echo "the C accelerator did not build (see pip's warning above)" >&2; return 1; }
  fi
}
in_mode() { # in_mode MODE COMMAND...: run COMMAND with (accelerated) or without (pure) C
  local mode="$1"
  shift
  if [[ "$mode" == pure ]]; then
    HUBBUB_NO_EXTENSIONS=1 "$@"
  else
    env -u HUBBUB_NO_EXTENSIONS "$@"
  fi
}

if ((only_pytest)); then
  for mode in $modes; do
    step "pytest ($mode)" in_mode "$mode" "$py" -m pytest "${pytest_args[@]}"
  done
else
  step "accelerator built" check_accelerator
  # --- static checks -----------------------------------------------------------------------
  step "ruff check" "$py" -m ruff check --output-format=concise src tests compliance examples scripts
  step "ruff format --check" "$py" -m ruff format --check --output-format=concise src tests compliance examples scripts
  step "mypy --strict (src)" "$py" -m mypy
  # compliance/wstest_loopback.py is Python 2.7 code (it runs inside wstest): not for mypy.
  typed_compliance=()
  for file in compliance/*.py; do
    [[ "$file" == compliance/wstest_loopback.py ]] || typed_compliance+=("$file")
  done
  step "mypy --strict (compliance, tests/interop, examples)" "$py" -m mypy --strict \
    "${typed_compliance[@]}" tests/conftest.py tests/interop examples/*.py scripts/package_smoke.py

  # --- the documentation site (its code examples run in pytest: tests/docs) -----------------
  step "docs" env HUBBUB_EXTRAS="$extras" bash scripts/docs.sh --quiet

  # --- tests: once per accelerator mode -------------------------------------------------------
  for mode in $modes; do
    step "pytest ($mode)" in_mode "$mode" "$py" -m pytest
  done

  # --- the packages: sdist and wheel built, checked, installed in fresh venvs (3.11, 3.13) ----
  step "packages" bash scripts/package_check.sh

  # --- Autobahn|Testsuite, both sides ---------------------------------------------------------
  if ((compliance)) && ((wstest_ok)); then
    for mode in $modes; do
      step "autobahn ($mode)" in_mode "$mode" \
        "$py" compliance/run_autobahn.py both --out "artifacts/autobahn/$mode"
      # The blocking client (hubbub.sync) has its own driver; client side only.
      if [[ -f compliance/client_driver_sync.py ]]; then
        step "autobahn sync client ($mode)" in_mode "$mode" "$py" compliance/run_autobahn.py \
          client --testee hubbub-sync --out "artifacts/autobahn/$mode"
      fi
    done
    # permessage-deflate (12.*, 13.*): all 216 cases take 30+ minutes, so by default CI runs
    # one or two cases of every group on both sides; HUBBUB_AUTOBAHN_DEFLATE=1 runs them all.
    # Full results and the command that made them: docs/compliance.md.
    if [[ "${HUBBUB_AUTOBAHN_DEFLATE:-0}" == "1" ]]; then
      deflate_cases=("12.*" "13.*")
    else
      deflate_cases=(12.1.1 12.1.5 12.2.1 12.3.1 12.4.1 12.5.1
        13.1.1 13.2.1 13.3.1 13.4.1 13.5.1 13.6.1 13.7.1)
    fi
    step "autobahn permessage-deflate" "$py" compliance/run_autobahn.py both --deflate \
      --cases "${deflate_cases[@]}" --out artifacts/autobahn/deflate
    # hubbub as uvicorn's WebSocket implementation (examples/asgi_echo.py, issue 16): the
    # server side, without and with the permessage-deflate subset.
    step "autobahn uvicorn protocol class" "$py" compliance/run_autobahn.py server \
      --testee asgi --out artifacts/autobahn
    step "autobahn uvicorn protocol class permessage-deflate" "$py" compliance/run_autobahn.py \
      server --testee asgi --deflate --cases "${deflate_cases[@]}" --out artifacts/autobahn/deflate
  fi
fi

printf '\n=== summary: %d steps passed, %d failed\n' "${#passed[@]}" "${#failed[@]}"
for name in "${failed[@]}"; do echo "    FAILED: $name"; done
((${#failed[@]} == 0))
