#!/usr/bin/env bash
# The project's virtualenv at .venv with kubenova installed (editable) and the dev tools.
source "$(dirname "$0")/lib.sh"
venv="$REPO_DIR/.venv"
stamp="$venv/.kubenova-installed"
if [[ ! -x "$venv/bin/python" ]]; then
  log "creating $venv"
  python3 -m venv "$venv"
fi
if [[ ! -f "$stamp" || "$REPO_DIR/pyproject.toml" -nt "$stamp" ]]; then
  log "installing kubenova and its dependencies into .venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -e "$REPO_DIR[dev]"
  touch "$stamp"
fi
