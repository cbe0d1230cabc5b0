#!/bin/sh
# Trim an image's virtualenv after install: the test suites that wheels ship (pandas' alone is
# 39 MB), pip itself, and the debug symbols of shared libraries (strip, from binutils in the
# build stage). Nothing the servers import at run time is touched; then bytecode is compiled
# once, so a read-only root filesystem never has to hold it.
set -eu
venv=$1
site=$(echo "$venv"/lib/python3*/site-packages)
"$venv/bin/pip" uninstall --quiet --yes pip
find "$site" -mindepth 2 -depth -type d -name tests -exec rm -rf {} +
find "$site" -type f -name '*.so*' -exec strip --strip-unneeded {} + 2>/dev/null || true
"$venv/bin/python" -m compileall -q -j 0 "$site" >/dev/null
