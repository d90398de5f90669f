#!/usr/bin/env bash
# Run the hubbub server from a fresh clone: creates .venv and installs hubbub if needed.
#
#   ./scripts/serve.sh                       echo server on ws://127.0.0.1:8765
#   ./scripts/serve.sh --port 9000 --subprotocol chat
#
# Arguments go to `hubbub echo` (see `./scripts/serve.sh --help`). When the messaging hub's
# `hubbub serve` exists, this script runs that instead.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/venv.sh
source scripts/venv.sh
ensure_venv

exec .venv/bin/hubbub echo "$@"
