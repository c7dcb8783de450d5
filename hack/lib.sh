# Shared by the hack/ scripts: pinned versions and where built tools are cached.
# The cache lives outside the work tree so a fresh clone on the same machine reuses it;
# `make setup` links the binaries into the repo's git-ignored .bin/.
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$HACK_DIR/.." && pwd)"
# shellcheck source=versions.env
source "$HACK_DIR/versions.env"
CACHE_DIR="${KUBENOVA_CACHE:-$HOME/.cache/kubenova}"
BIN_DIR="$REPO_DIR/.bin"
mkdir -p "$CACHE_DIR" "$BIN_DIR"

log() { printf '[setup] %s\n' "$*" >&2; }

# link_tool NAME PATH: expose a cached binary as .bin/NAME.
link_tool() { ln -sfn "$2" "$BIN_DIR/$1"; }

# apt_install_missing PKG...: install those of the Debian packages that are not installed yet.
apt_install_missing() {
  local missing=() p sudo=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "apt-get install ${missing[*]}"
  [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
