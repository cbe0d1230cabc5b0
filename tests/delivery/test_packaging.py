"""What users install: the wheel holds the product only, each extra is pinned for its image,
and the plugin runs on the base dependencies."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CONSTRAINTS = ROOT / "hack" / "constraints"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(extra: str | None) -> list[Requirement]:
    """The requirements of the base install plus ``extra`` (and the extras it names)."""
    found = [Requirement(r) for r in PROJECT["dependencies"]]
    pending = [extra] if extra else []
    while pending:
        for line in PROJECT["optional-dependencies"][pending.pop()]:
            requirement = Requirement(line)
            if canonical(requirement.name) == canonical(PROJECT["name"]):
                pending += sorted(requirement.extras)
            else:
                found.append(requirement)
    return found


def pins(extra: str) -> dict[str, str]:
    lines = (CONSTRAINTS / f"{extra}.txt").read_text().splitlines()
    pairs = (line.split("==") for line in lines if line and not line.startswith("#"))
    return {canonical(name): version for name, version in pairs}


def test_the_wheel_holds_the_product_and_no_test_harness(tmp_path: Path) -> None:
    # Built from a copy: setuptools leaves a build/ directory beside the sources.
    source = tmp_path / "src"
    source.mkdir()
    for part in (
        "pyproject.toml",
        "README.md",
        "operator",
        "predictors",
        "transformers_",
        "evaluation",
    ):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        copy(ROOT / part, source / part)
    build = ["wheel", "--no-deps", "--no-build-isolation", "-q", "--wheel-dir", str(tmp_path)]
    subprocess.run(
        [sys.executable, "-m", "pip", *build, str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {
        "pipeline_operator",
        "pipeline_serving",
        "pipeline_predictors",
        "pipeline_transformers",
        "pipeline_evaluation",
    }
    assert "pipeline_operator/__main__.py" in names
    assert "pipeline_evaluation/__main__.py" in names
    assert "pipeline_predictors/retriever/model.py" in names
    leftovers = [n for n in names if re.search(r"harness|localcluster|testing\.py|world\.py", n)]
    assert leftovers == []


@pytest.mark.parametrize(
    ("extra", "locked"), [("operator", "operator"), ("dataplane", "dataplane")]
)
def test_each_image_installs_its_extra_at_pinned_versions(extra: str, locked: str) -> None:
    pinned = pins(locked)
    for requirement in requirements(extra):
        name = canonical(requirement.name)
        assert name in pinned, f"{requirement} of [{extra}] is not pinned in {locked}.txt"
        assert requirement.specifier.contains(pinned[name]), (
            f"{locked}.txt pins {name}=={pinned[name]}, outside {requirement}: run hack/lock.sh"
        )


@pytest.mark.parametrize(
    ("dockerfile", "extra"),
    [
        ("operator/Dockerfile", "operator"),
        ("predictors/Dockerfile", "dataplane"),
        ("transformers_/Dockerfile", "serving"),
    ],
)
def test_dockerfiles_install_the_projects_extras_not_their_own_lists(
    dockerfile: str, extra: str
) -> None:
    text = (ROOT / dockerfile).read_text()
    default = re.search(r"^ARG EXTRA=(\S+)$", text, re.MULTILINE)
    installed = text.replace("${EXTRA}", default.group(1)) if default else text
    assert f'".[{extra}]"' in installed and "--constraint /constraints.txt" in text
    assert not re.search(r'pip install[^\n]*"(torch|kserve|kopf)[><=]', text)


def test_the_evaluation_image_installs_its_package_alone() -> None:
    """No dependency, no virtualenv, no constraints: the package and the base's Python."""
    text = (ROOT / "evaluation" / "Dockerfile").read_text()
    installs = re.findall(r"pip install ([^\n\\]*)", text)
    assert [i.split() for i in installs] == [
        ["--quiet", "--no-compile", "--no-deps", "--target", "/opt/app", "."]
    ]
    assert "ARG BASE_IMAGE=python:3.11-slim" in text and "FROM ${BASE_IMAGE}" in text
    assert "/constraints.txt" not in text and "/opt/venv" not in text
    assert re.search(r"^USER 65532(:65532)?$", text, re.MULTILINE)
    assert 'ENTRYPOINT ["python", "-m", "pipeline_evaluation"]' in text
    # Its bytecode is compiled into the image, none written at run time (read-only root).
    assert "compileall" in text and "PYTHONDONTWRITEBYTECODE=1" in text


def test_the_evaluation_package_imports_the_standard_library_alone() -> None:
    package = ROOT / "evaluation" / "pipeline_evaluation"
    imported = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert imported and imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


# The kit's images: name in hack/images/build.sh, Dockerfile, the folder it is built from.
KIT_IMAGES = {
    "operator": ("operator/Dockerfile", "operator"),
    "predictors": ("predictors/Dockerfile", "predictors"),
    "transformer": ("transformers_/Dockerfile", "transformers_"),
    "evaluation": ("evaluation/Dockerfile", "evaluation"),
}


def test_make_images_builds_each_of_the_kits_images() -> None:
    listed = subprocess.run(
        ["bash", str(ROOT / "hack" / "images" / "build.sh"), "--list"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    version = PROJECT["version"]
    script = (ROOT / "hack" / "images" / "build.sh").read_text()
    for image, (dockerfile, _) in KIT_IMAGES.items():
        assert f"ghcr.io/inference-pipelines/{image}:{version}" in listed
        assert f'kit_image "${{images[$image]}}" {dockerfile}' in script
    order = re.search(r"^order=\((.*?)\)$", script, re.MULTILINE | re.DOTALL)
    assert order and order.group(1).split().index("evaluation") == (
        order.group(1).split().index("transformer") + 1
    )
    assert "[evaluation]=250" in script  # its size target, in MB


def test_the_build_context_holds_each_component_but_not_its_dockerfile() -> None:
    rules = (ROOT / ".dockerignore").read_text().splitlines()
    for dockerfile, folder in KIT_IMAGES.values():
        assert f"!{folder}/" in rules and dockerfile in rules
        assert (ROOT / dockerfile).is_file()


def test_the_plugin_needs_only_the_base_dependencies(tmp_path: Path) -> None:
    base = {canonical(r.name) for r in requirements(None)}
    assert base == {"kubernetes", "pydantic", "pyyaml", "urllib3"}
    blocked = [
        *("kopf", "opentelemetry", "torch", "kserve", "pydantic_settings", "aiohttp"),
        *("celpy", "prometheus_client"),
    ]
    probe = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "from pipeline_operator.cli.main import main\n"
        "main(['render', sys.argv[1]])\n"
    )
    example = ROOT / "manifests" / "examples" / "01-text-classifier" / "pipeline.yaml"
    # With an analysis step: its successCondition is the operator's to check (CEL).
    body = yaml.safe_load(example.read_text())
    metric = {"name": "errors", "query": "up", "successCondition": "result < 0.01"}
    body["spec"]["rollout"] = {"canary": {"steps": [{"analysis": {"metrics": [metric]}}]}}
    analysed = tmp_path / "analysed.yaml"
    analysed.write_text(yaml.safe_dump(body))
    for path in (example, analysed):
        done = subprocess.run(
            [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert "kind: InferenceService" in done.stdout


@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13", "3.14", "3.15"])
def test_the_plugin_installs_on_the_pythons_current_today(tmp_path: Path, python: str) -> None:
    """The base install, resolved as pip would for that Python, from wheels alone (no
    compiler on a user's laptop): requires-python and every dependency admit it."""
    report = tmp_path / "report.json"
    for_python = ["--python-version", python, "--only-binary", ":all:"]
    dry_run = ["install", "--quiet", "--dry-run", "--ignore-installed", *for_python]
    done = subprocess.run(
        [sys.executable, "-m", "pip", *dry_run, "--report", str(report), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    resolved = {canonical(i["metadata"]["name"]) for i in json.loads(report.read_text())["install"]}
    assert {"inference-pipelines", "kubernetes", "pydantic"} <= resolved


def test_the_demos_install_resolves_without_torch(tmp_path: Path) -> None:
    """What ``make demo`` installs (``[demo]``), resolved as pip would: no torch, no CUDA."""
    report = tmp_path / "report.json"
    dry_run = ["install", "--quiet", "--dry-run", "--ignore-installed", "--report", str(report)]
    subprocess.run(
        [sys.executable, "-m", "pip", *dry_run, f"{ROOT}[demo]"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    resolved = {canonical(i["metadata"]["name"]) for i in json.loads(report.read_text())["install"]}
    assert {"kopf", "kserve", "onnxruntime", "onnx"} <= resolved
    assert not {name for name in resolved if name == "torch" or name.startswith("nvidia-")}
