#!/usr/bin/env bash
# Build the documentation site into site/ with MkDocs (Material + mkdocstrings), warnings as
# errors: a broken link, a missing page or a docstring that does not parse fails the build.
#
#   ./scripts/docs.sh              build site/ (open site/index.html)
#   ./scripts/docs.sh serve        a live-reloading preview on http://127.0.0.1:8000/
#
# Installs the docs extra into .venv first (scripts/venv.sh). scripts/test.sh runs it as its
# "docs" step with HUBBUB_EXTRAS set to the extras it installed, so nothing is reinstalled.
# The code examples of the pages are run by tests/docs/test_snippets.py.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/venv.sh
source scripts/venv.sh
ensure_venv "${HUBBUB_EXTRAS:-docs}"

# Material's banner about its successor is advice, not a problem of these pages.
export NO_MKDOCS_2_WARNING=1
if [[ "${1:-}" == serve ]]; then
  exec .venv/bin/python -m mkdocs serve --strict --dev-addr 127.0.0.1:8000
fi
exec .venv/bin/python -m mkdocs build --strict --clean "$@"
