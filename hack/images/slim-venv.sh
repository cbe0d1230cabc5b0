#!/bin/sh
# Trim an image's virtualenv after install: the test suites that wheels ship (pandas' alone is
# 39 MB) and pip itself; then compile bytecode once, so a read-only root filesystem never has
# to hold it. Shared libraries are left as the wheels ship them (strip breaks the ones
# auditwheel patched). The model implementations of transformers (over 400 of them, about
# 50 MB of bytecode) stay source: a server imports the one or two it serves.
set -eu
venv=$1
site=$(echo "$venv"/lib/python3*/site-packages)
"$venv/bin/pip" uninstall --quiet --yes pip
find "$site" -mindepth 2 -depth -type d -name tests -exec rm -rf {} +
# (compileall fails on the few files wheels ship for other Python versions; those stay source.)
"$venv/bin/python" -m compileall -q -j 0 -x '/transformers/models/' "$site" >/dev/null || true
