#!/usr/bin/env bash
# Install the Autobahn|Testsuite (`wstest`) that compliance/autobahn.py runs.
#
# Usage: compliance/install_wstest.sh            (prints the wstest home on its last line)
#
# wstest (autobahntestsuite 25.10.1, the last release) runs on Python 2.7 only. Debian 12
# packages no Python 2, so we look for a CPython 2.7 (pyenv's 2.7.18 on our machines, or
# $PYTHON2), and build a 2.7 virtualenv with `virtualenv` 20.21.1, the last release that can
# still create Python 2.7 environments (it runs from a small Python 3 venv of its own).
# Every Python 2 package is pinned in wstest-requirements.txt.
#
# Idempotent and cheap when nothing changed: the install is keyed by the hash of
# wstest-requirements.txt and this script, written to $WSTEST_HOME/STAMP last.
#
# Environment:
#   WSTEST_HOME  where to install (default: ${XDG_CACHE_HOME:-~/.cache}/hubbub/wstest)
#   PYTHON2      a Python 2.7 interpreter to use instead of searching for one
#   PYTHON3      the Python 3 that runs virtualenv (default: python3)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
home="${WSTEST_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/hubbub/wstest}"
python3="${PYTHON3:-python3}"
requirements="$here/wstest-requirements.txt"

say() { printf '[install_wstest] %s\n' "$*" >&2; }

stamp="$(cat "$requirements" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
if [[ -f "$home/STAMP" && "$(cat "$home/STAMP")" == "$stamp" && -x "$home/py27/bin/wstest" ]]; then
  say "up to date in $home"
  echo "$home"
  exit 0
fi

# --- a Python 2.7 with zlib (permessage-deflate cases) and ssl -----------------------------
usable_py27() {
  [[ -x "$1" ]] && "$1" -c 'import sys, zlib, ssl; sys.exit(sys.version_info[:2] != (2, 7))' \
    >/dev/null 2>&1
}
find_py27() {
  if [[ -n "${PYTHON2:-}" ]]; then
    usable_py27 "$PYTHON2" && { echo "$PYTHON2"; return 0; }
    say "PYTHON2=$PYTHON2 is not a Python 2.7 with zlib and ssl"
    return 1
  fi
  local roots=()
  command -v pyenv >/dev/null 2>&1 && roots+=("$(pyenv root)")
  roots+=("${PYENV_ROOT:-$HOME/.pyenv}" /root/.pyenv /opt/pyenv /usr/local/pyenv)
  local candidates=() root candidate
  for root in "${roots[@]}"; do
    candidates+=("$root"/versions/2.7*/bin/python2.7)
  done
  candidates+=("$(command -v python2.7 || true)" "$(command -v pypy || true)")
  for candidate in "${candidates[@]}"; do
    if [[ -n "$candidate" ]] && usable_py27 "$candidate"; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}
if ! py27="$(find_py27)"; then
  say "no Python 2.7 found (searched pyenv's versions and PATH). wstest needs one;"
  say "set PYTHON2=/path/to/python2.7 (CPython 2.7 or PyPy2, with zlib and ssl)."
  exit 1
fi
say "Python 2.7: $py27"

# --- virtualenv 20.21.1: newer releases refuse to create Python 2 environments ------------
mkdir -p "$home"
rm -f "$home/STAMP"
if ! "$home/boot/bin/virtualenv" --version 2>/dev/null | grep -q '^virtualenv 20\.21\.1 '; then
  say "bootstrapping virtualenv 20.21.1 in $home/boot"
  rm -rf "$home/boot"
  "$python3" -m venv "$home/boot"
  "$home/boot/bin/python" -m pip install --quiet --disable-pip-version-check \
    "virtualenv==20.21.1" >"$home/boot.log" 2>&1 || { cat "$home/boot.log" >&2; exit 1; }
fi

# --- the Python 2.7 environment with wstest ------------------------------------------------
say "creating $home/py27 and installing wstest (about 20 s with a warm pip cache, 2 min cold)"
rm -rf "$home/py27"
"$home/boot/bin/virtualenv" --quiet --python "$py27" "$home/py27"
# pip 20.3 on Python 2 is chatty (deprecation banners, index warnings): show its log on failure.
if ! "$home/py27/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-python-version-warning -r "$requirements" >"$home/pip.log" 2>&1; then
  cat "$home/pip.log" >&2
  say "pip failed (log above, also in $home/pip.log)"
  exit 1
fi

version="$("$home/py27/bin/wstest" --autobahnversion 2>&1 | tr '\n' ' ')"
case "$version" in
  *"AutobahnTestSuite 25.10.1"*) ;;
  *) say "wstest does not run: $version"; exit 1 ;;
esac
"$home/py27/bin/python" -c 'import autobahntestsuite.fuzzing, autobahntestsuite.wstest'
echo "$stamp" > "$home/STAMP"
say "installed: $version"
echo "$home"
