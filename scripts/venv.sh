# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/serve.sh: make ./.venv exist and hold hubbub.
#
#   ensure_venv [EXTRAS]     e.g. ensure_venv test,speed  ->  pip install -e '.[test,speed]'
#
# Creates .venv with the first Python >= 3.11 found ($PYTHON, python3, python3.13 ...
# python3.11, then pyenv's versions), and reinstalls hubbub (editable) only when its build
# inputs changed: pyproject.toml, setup.py and the C sources of the accelerator. Pure-Python
# changes need no reinstall (editable install); a changed .c file needs a rebuild.

hubbub_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

_python_ok() {
  [[ -n "$1" ]] && "$1" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3 python3.13 python3.12 python3.11; do
    if [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null && _python_ok "$candidate"; then
      command -v "$candidate"
      return 0
    fi
  done
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[1-9]*/bin/python3; do
    if _python_ok "$candidate"; then
      echo "$candidate"
      return 0
    fi
  done
  echo "no Python >= 3.11 found: install one (apt-get install python3) or set PYTHON=" >&2
  return 1
}

ensure_venv() {
  local extras="${1:-}" spec="." python stamp
  [[ -n "$extras" ]] && spec=".[$extras]"
  if ! [[ -x "$hubbub_root/.venv/bin/python" ]] || ! _python_ok "$hubbub_root/.venv/bin/python"; then
    python="$(find_python)" || return 1
    echo "[venv] creating .venv with $python ($("$python" --version))" >&2
    rm -rf "$hubbub_root/.venv"
    "$python" -m venv "$hubbub_root/.venv" || return 1
  fi
  # (Missing files are fine, e.g. no *.h: hence `|| true` under the callers' pipefail.)
  stamp="$({ cd "$hubbub_root" && cat pyproject.toml setup.py src/hubbub/*.c src/hubbub/*.h \
    2>/dev/null || true; } | sha256sum | cut -c1-16)-$extras"
  if [[ "$(cat "$hubbub_root/.venv/.hubbub-stamp" 2>/dev/null)" == *"$stamp"* ]] &&
    "$hubbub_root/.venv/bin/python" -c 'import hubbub' 2>/dev/null; then
    return 0
  fi
  echo "[venv] pip install -e '$spec'" >&2
  # Keep pip's output to real problems: drop the index-location warnings of our machines.
  (cd "$hubbub_root" &&
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec" 2>&1 |
    grep -v 'is ignored: it is neither a file nor a directory'
    exit "${PIPESTATUS[0]}") || return 1
  echo "$stamp" >>"$hubbub_root/.venv/.hubbub-stamp"
}
