#!/usr/bin/env bash
# Install what is missing and nothing else: Debian packages, then the Python reference
# environment (LibTorch comes from its torch wheel). Idempotent; seconds when all is there.
# The environment and the compiler cache live outside the clone, under $BIUD_CACHE
# (default ~/.cache/biud), so that CI in a fresh clone reuses them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${BIUD_CACHE:-$HOME/.cache/biud}"
venv="$cache/venv"
mkdir -p "$cache"

say() { printf '[setup] %s\n' "$*" >&2; }

# --- Debian packages ---------------------------------------------------------------------
pkgs=(build-essential cmake ninja-build ccache pkg-config git
      libyaml-cpp-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev
      libinsighttoolkit5-dev libgdcm-tools libsentencepiece-dev sentencepiece
      libgtest-dev libgmock-dev googletest libbenchmark-dev libgloo-dev
      libtcmalloc-minimal4 clang-format-14 python3-venv)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Java runs pycocoevalcap's METEOR reference; any JRE will do.
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages: all present"
fi

# --- Python reference environment ---------------------------------------------------------
req="$here/requirements-dev.txt"
stamp="$venv/.biud-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say "Python environment $venv: up to date"
else
  if [ ! -x "$venv/bin/python" ]; then
    py="$(command -v python3)"
    say "creating $venv with $py"
    "$py" -m venv "$venv"
  fi
  say "installing requirements-dev.txt into $venv (first time: several minutes, ~3 GB)"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$req"
  echo "$want" > "$stamp"
fi
# The biud Python package (python/, docs/python.md), editable; the tests load runs through it.
if ! BIUD_PY="$here/python/" "$venv/bin/python" -c 'import importlib.util as u, os, sys
s = u.find_spec("biud"); sys.exit(0 if s and (s.origin or "").startswith(os.environ["BIUD_PY"]) else 1)' 2>/dev/null; then
  say "installing the biud Python package into $venv (pip install -e python/)"
  "$venv/bin/python" -m pip install -q --no-deps -e "$here/python" ||
    say "warning: pip install -e python/ failed (offline?); the tests import python/ directly"
fi
# CT-CLIP's source (CC-BY-NC-SA, fetched into the cache, never into the clone) and the PyPI
# packages its modules import: the CT-CLIP equality tests run against it and skip without it.
if ! "$venv/bin/python" -c 'import os, sys; sys.path.insert(0, sys.argv[1]); import ctclip_reference as r
sys.exit(0 if os.path.exists(os.path.join(r.source_root(), "scripts", "data_inference_nii.py")) else 1)' \
    "$here/tests/reference" 2>/dev/null; then
  say "fetching CT-CLIP's source for the reference tests (tests/reference/ctclip_setup.py)"
  "$venv/bin/python" "$here/tests/reference/ctclip_setup.py" ||
    say "warning: CT-CLIP's source could not be fetched (offline?); the CT-CLIP tests will be skipped. With a checkout or archive of it: $venv/bin/python tests/reference/ctclip_setup.py --from DIR"
fi
say "done"
