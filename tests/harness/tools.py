"""The pinned tool set (control-plane binaries, kwok, helm, KServe CRDs and router, Traefik and
the Gateway API CRDs and conformance suite).

Built from Go modules by ``hack/tools/build.sh`` into a versioned cache outside the repo and
reused when present. ``PIPELINE_TOOLS_DIR`` names a prebuilt set instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "tools" / "build.sh"


class ToolError(RuntimeError):
    """The tool set could not be built or is incomplete."""


@dataclass(frozen=True)
class ToolSet:
    root: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    def binary(self, name: str) -> Path:
        path = self.bin_dir / name
        if not path.exists():
            raise ToolError(f"tool {name!r} is missing from {self.bin_dir}")
        return path

    @property
    def kserve_crds(self) -> list[Path]:
        return sorted((self.root / "kserve-crds").glob("*.yaml"))

    def gateway_api_crds(self, channel: str = "standard") -> list[Path]:
        """The Gateway API CRDs of one release channel (``standard`` or ``experimental``)."""
        found = sorted((self.root / "gateway-api-crds" / channel).glob("*.yaml"))
        if not found:
            raise ToolError(f"no Gateway API CRDs of channel {channel!r} in {self.root}")
        return found

    def traefik_crds(self) -> list[Path]:
        """Traefik's own CRDs (IngressRoute, Middleware, TraefikService and the rest)."""
        found = sorted((self.root / "traefik-crds").glob("*.yaml"))
        if not found:
            raise ToolError(f"no Traefik CRDs in {self.root}")
        return found

    def versions(self) -> dict[str, str]:
        lines = (self.root / "versions.env").read_text(encoding="utf-8").splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    @classmethod
    def ensure(cls) -> ToolSet:
        """Return the tool set, building what is missing (progress goes to stderr)."""
        prebuilt = os.environ.get("PIPELINE_TOOLS_DIR")
        if prebuilt:
            return cls(Path(prebuilt))
        if not BUILD_SCRIPT.exists():
            raise ToolError(f"{BUILD_SCRIPT} not found: set PIPELINE_TOOLS_DIR to a built tool set")
        result = subprocess.run(
            ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=sys.stderr, text=True
        )
        if result.returncode != 0:
            raise ToolError(f"{BUILD_SCRIPT} failed with exit code {result.returncode}")
        return cls(Path(result.stdout.strip().splitlines()[-1]))
