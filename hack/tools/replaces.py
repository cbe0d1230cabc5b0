#!/usr/bin/env python3
"""Print the replace directives a wrapper module must restate from an upstream go.mod.

Local-path replaces of Kubernetes staging modules (``k8s.io/X => ./staging/src/k8s.io/X``)
become the published ``k8s.io/X v0.MINOR.PATCH``; other local-path replaces (etcd's sibling
modules, already required at their published versions) are dropped; module-to-module
replaces are copied, and so are ``exclude`` directives (ignored in a dependency too).
Usage: replaces.py UPSTREAM_GO_MOD UPSTREAM_VERSION
"""

import re
import sys


def staging_version(upstream_version: str) -> str:
    major, minor, patch = upstream_version.lstrip("v").split(".")[:3]
    return f"v0.{minor}.{patch}" if major == "1" else upstream_version


def replace_lines(gomod: str, upstream_version: str) -> list[str]:
    body = re.sub(
        r"replace\s*\((.*?)\)",
        lambda m: "\n".join("replace " + line for line in m.group(1).splitlines()),
        gomod,
        flags=re.S,
    )
    body = re.sub(
        r"exclude\s*\((.*?)\)",
        lambda m: "\n".join("exclude " + line for line in m.group(1).splitlines()),
        body,
        flags=re.S,
    )
    out = []
    for line in body.splitlines():
        exclude = re.match(r"\s*exclude\s+(\S+)\s+(\S+)", line)
        if exclude:
            out.append(f"exclude {exclude.group(1)} {exclude.group(2)}")
            continue
        match = re.match(r"\s*replace\s+(\S+)(?:\s+\S+)?\s*=>\s*(\S+)(?:\s+(\S+))?", line)
        if not match:
            continue
        old, new, version = match.groups()
        if new.startswith("./staging/"):
            out.append(f"replace {old} => {old} {staging_version(upstream_version)}")
        elif not new.startswith("."):
            out.append(f"replace {old} => {new} {version}")
    return out


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        print("\n".join(replace_lines(f.read(), sys.argv[2])))
