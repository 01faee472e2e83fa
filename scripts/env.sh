# Sourced by scripts/build.sh and scripts/fuzz.sh: where biud keeps what outlives a clone (the
# virtual environment and the compiler cache, under $BIUD_CACHE, default ~/.cache/biud) and
# ccache's settings. Values already in the environment win. Sets `here` (the repository) and `cache`.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${BIUD_CACHE:-$HOME/.cache/biud}"
export CCACHE_DIR="${CCACHE_DIR:-$cache/ccache}"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$here}"
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-8G}"
