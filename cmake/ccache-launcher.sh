#!/bin/sh
# Compiler launcher: ccache for every compile except precompiled headers. A .gch served from the
# cache may have been built in another checkout (ccache's base_dir makes paths relative), and GCC
# then silently refuses it ("not used because ..."), making every LibTorch file slow to compile.
for a in "$@"; do
  case "$a" in
    *.gch) exec "$@" ;;
  esac
done
exec ccache "$@"
