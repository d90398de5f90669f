#!/usr/bin/env bash
# Run the hub from a fresh clone: creates .venv and installs hubbub if needed, then runs
# `hubbub serve --dev`: the in-memory broker, the chat page at http://127.0.0.1:8765/.
#
#   ./scripts/serve.sh                       the hub on 127.0.0.1:8765
#   ./scripts/serve.sh --port 9000           more arguments go to `hubbub serve`
#
# --dev is INSECURE development mode (sign in with a bare name) and is meant for a hub on
# this machine only; for a real deployment run `hubbub serve --secret ...` (docs/chat.md).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/venv.sh
source scripts/venv.sh
ensure_venv hub

exec .venv/bin/hubbub serve --dev "$@"
