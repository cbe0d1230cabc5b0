"""A peer's environment (``make peers``): created once, reused, named by what it installs.

A peer whose pins conflict with kserve's gets its own virtualenv under
``~/.cache/inference-pipelines/peers/<name>-<hash>``, the hash of its requirements file
(``bench/peers/<name>.txt``) and of the kit environment it layers on. It sees the kit's
site-packages after its own (a ``.pth`` line), so its own pins win and the model's torch,
transformers and tokenizers are the kit's very build. Prints the environment's path.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path.home() / ".cache" / "inference-pipelines" / "peers"


def env_dir(name: str) -> Path:
    """Where the environment of peer ``name`` lives (whether or not it exists yet)."""
    requirements = HERE / f"{name}.txt"
    if not requirements.is_file():
        raise FileNotFoundError(f"no requirements for peer {name!r}: {requirements} is missing")
    digest = hashlib.sha256(requirements.read_bytes())
    digest.update(sysconfig.get_paths()["purelib"].encode())
    return CACHE / f"{name}-{digest.hexdigest()[:12]}"


def ensure(name: str) -> Path:
    """The environment of peer ``name``, created on first use; its ``bin/`` has the servers."""
    target = env_dir(name)
    stamp = target / ".installed"
    if stamp.exists():
        return target
    venv.create(target, with_pip=True, clear=True)
    python = target / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "zz-kit.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--progress-bar",
            "off",
            "-q",
            "-r",
            str(HERE / f"{name}.txt"),
        ],
        check=True,
    )
    stamp.touch()
    return target


if __name__ == "__main__":
    for peer in sys.argv[1:] or ["mlserver"]:
        print(ensure(peer))
