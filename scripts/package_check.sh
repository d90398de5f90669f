#!/usr/bin/env bash
# Build hubbub's sdist and wheel, check them, install them in fresh venvs and smoke-test them.
#
#   scripts/package_check.sh            (scripts/test.sh runs it as its "packages" step)
#
# 1. `python -m build`: the sdist and a wheel (with the C accelerator) into a temp dir;
#    `twine check --strict` on both; the files that must be in each are listed below.
# 2. On the oldest and the newest supported Python (3.11 and 3.13, from pyenv or
#    $HUBBUB_PACKAGE_PYTHONS, a space-separated list of interpreters): a fresh venv gets the
#    wheel for that Python (the one built above, or one built from the sdist with it),
#    WITHOUT extras: scripts/package_smoke.py core (import, accelerator, echo round trips,
#    the one-line message of a missing extra); then `pip install 'WHEEL[hub]'` and
#    scripts/package_smoke.py hub (`hubbub serve` serves its chat page and /healthz).
# A missing interpreter skips that Python, and fails the check under CI
# (HUBBUB_REQUIRE_PEERS=1, set by scripts/test.sh when CI=true).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"
py="${HUBBUB_PYTHON:-$root/.venv/bin/python}"
work="$(mktemp -d "${TMPDIR:-/tmp}/hubbub-package.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# The packages under test are the compiled ones: never build or run them in pure mode.
unset HUBBUB_NO_EXTENSIONS
quiet_pip=(--quiet --disable-pip-version-check)

echo "[package] building the sdist and the wheel"
"$py" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 ||
  { cat "$work/build.log"; exit 1; }
sdist=("$work"/dist/hubbub-*.tar.gz)
wheel=("$work"/dist/hubbub-*.whl)
[[ -f "${sdist[0]}" && -f "${wheel[0]}" ]] || { echo "build made no sdist or wheel" >&2; exit 1; }
echo "[package] $(basename "${sdist[0]}") $(basename "${wheel[0]}")"
"$py" -m twine check --strict "${sdist[0]}" "${wheel[0]}"

# What each archive must hold: the licence, the accelerator, the hub's static files, types.
"$py" - "${sdist[0]}" "${wheel[0]}" <<'PY'
import sys, tarfile, zipfile
sdist, wheel = sys.argv[1:]
with tarfile.open(sdist) as tar:
    names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
need = {"LICENSE", "README.md", "pyproject.toml", "setup.py", "src/hubbub/_speedups.c",
        "src/hubbub/_payload.h", "src/hubbub/hub/server/static/index.html", "src/hubbub/py.typed"}
missing = sorted(need - names)
with zipfile.ZipFile(wheel) as whl:
    wnames = set(whl.namelist())
wneed = {"hubbub/py.typed", "hubbub/_speedups.pyi", "hubbub/hub/server/static/index.html",
         "hubbub/hub/server/static/hubbub.js"}
missing += sorted(wneed - wnames)
if not any(n.startswith("hubbub/_speedups.") and n.endswith((".so", ".pyd")) for n in wnames):
    missing.append("the compiled hubbub/_speedups extension in the wheel")
if not any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")
           for n in wnames):
    missing.append("LICENSE in the wheel's dist-info")
if missing:
    sys.exit(f"[package] missing from the archives: {missing}")
print("[package] archives hold the licence, the accelerator, the static files and the types")
PY

pythons=()
if [[ -n "${HUBBUB_PACKAGE_PYTHONS:-}" ]]; then
  read -ra pythons <<<"$HUBBUB_PACKAGE_PYTHONS"
else
  for version in 3.11 3.13; do
    # The newest patch release of each, from pyenv (sort -V: 3.13.10 after 3.13.9).
    found="$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/python3 2>/dev/null |
      sort -V | tail -n 1)"
    found="${found:-$(command -v "python$version" || true)}"
    if [[ -z "$found" ]]; then
      echo "[package] no Python $version found (pyenv install $version)" >&2
      [[ "${HUBBUB_REQUIRE_PEERS:-0}" == 1 ]] && exit 1
      continue
    fi
    pythons+=("$found")
  done
fi
((${#pythons[@]})) || { echo "[package] no Python to install into" >&2; exit 1; }

build_tag="$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
for python in "${pythons[@]}"; do
  tag="$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
  echo "[package] $("$python" --version) ($python)"
  venv="$work/venv-$tag"
  "$python" -m venv "$venv"
  if [[ "$tag" == "$build_tag" ]]; then
    target="${wheel[0]}"
  else
    # A wheel holds a compiled extension for one Python: build this Python's from the sdist.
    "$venv/bin/python" -m pip wheel "${quiet_pip[@]}" --no-deps --wheel-dir "$work/wheels-$tag" \
      "${sdist[0]}" >"$work/wheel-$tag.log" 2>&1 || { cat "$work/wheel-$tag.log"; exit 1; }
    target="$(ls "$work/wheels-$tag"/hubbub-*.whl)"
  fi
  echo "[package] installing $(basename "$target") without extras"
  "$venv/bin/python" -m pip install "${quiet_pip[@]}" "$target" 2>&1 | grep -v 'is ignored' || true
  # Run from the temp dir so that the source tree is not on the path.
  (cd "$work" && "$venv/bin/python" "$root/scripts/package_smoke.py" core)
  echo "[package] installing the hub extra"
  "$venv/bin/python" -m pip install "${quiet_pip[@]}" "$target[hub]" 2>&1 | grep -v 'is ignored' || true
  (cd "$work" && "$venv/bin/python" "$root/scripts/package_smoke.py" hub)
done
echo "[package] all good"
