"""``kubectl pipeline render FILE [-o yaml|json]``: the KServe objects a pipeline file becomes.

Offline (no cluster): each InferencePipeline in FILE (``-`` for stdin) is planned as on its
first deploy, its revision stable at 100% of the traffic, and the InferenceServices and the
InferenceGraph are printed, for review and GitOps diffs. The owner reference carries a
placeholder uid, since the real one exists only once the pipeline is created.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml
from pydantic import ValidationError

from pipeline_operator.api import validation
from pipeline_operator.api.v1alpha1 import API_VERSION, KIND, InferencePipelineSpec
from pipeline_operator.cli import flags
from pipeline_operator.cli.client import DEFAULT_NAMESPACE
from pipeline_operator.cli.errors import CliError
from pipeline_operator.cli.format import as_list, dump
from pipeline_operator.core.naming import revision_of
from pipeline_operator.core.planner import Owner, PlanError, PlanOptions, plan_revision

PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"

# -- pure ------------------------------------------------------------------------------------


def load_documents(text: str, source: str) -> list[dict[str, Any]]:
    """The InferencePipeline documents of a YAML (or JSON) stream; others are skipped."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        first = " ".join(str(err).split())
        raise CliError(f"{source}: not valid YAML: {first}") from None
    items: list[Any] = []
    for doc in docs:
        items += (
            doc.get("items", []) if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
        )
    pipelines = [d for d in items if isinstance(d, dict) and d.get("kind") == KIND]
    if not pipelines:
        raise CliError(f"{source}: no {KIND} ({API_VERSION}) document found")
    for doc in pipelines:
        if doc.get("apiVersion") != API_VERSION:
            raise CliError(
                f"{source}: {KIND} apiVersion {doc.get('apiVersion')!r} is not {API_VERSION}"
            )
    return pipelines


def parse_spec(doc: dict[str, Any], source: str) -> InferencePipelineSpec:
    """The spec, or one error line naming every invalid field (as the apiserver would)."""
    name = (doc.get("metadata") or {}).get("name", "?")
    try:
        spec = InferencePipelineSpec.model_validate(doc.get("spec") or {})
    except ValidationError as err:
        problems = "; ".join(validation.unreadable(err))
        raise CliError(f"{source}: {KIND} {name}: {problems}") from None
    problems_list = validation.validate(spec)
    if problems_list:
        raise CliError(f"{source}: {KIND} {name}: {'; '.join(problems_list)}")
    return spec


def lint_warnings(docs: list[dict[str, Any]], source: str) -> list[str]:
    """The warnings of every pipeline document: it deploys, but probably not as meant (the
    operator reports the same in the Warnings condition)."""
    mode = PlanOptions().deployment_mode
    return [
        f"{source}: {KIND} {(doc.get('metadata') or {}).get('name', '?')}: warning: {warning}"
        for doc in docs
        for warning in validation.lint(parse_spec(doc, source), mode)
    ]


def render_objects(
    docs: list[dict[str, Any]], source: str, namespace: str | None
) -> list[dict[str, Any]]:
    """The planned KServe objects of every pipeline document, in apply order."""
    out: list[dict[str, Any]] = []
    for doc in docs:
        meta = doc.get("metadata") or {}
        name = meta.get("name")
        if not name:
            raise CliError(f"{source}: {KIND} without metadata.name")
        spec = parse_spec(doc, source)
        owner = Owner(
            name=str(name),
            namespace=str(meta.get("namespace") or namespace or DEFAULT_NAMESPACE),
            uid=PLACEHOLDER_UID,
        )
        try:
            out += plan_revision(owner, spec, revision_of(spec))
        except PlanError as err:
            raise CliError(f"{source}: {KIND} {name}: {err}") from None
    return out


def documents(objects: list[dict[str, Any]], output: str) -> str:
    """YAML documents separated by ``---`` (for ``kubectl apply``), or a JSON ``List``."""
    if output == "json":
        return dump(as_list(objects), output)
    return "\n---\n".join(dump(o, output) for o in objects)


# -- wiring ----------------------------------------------------------------------------------


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "render",
        parents=[parent],
        help="print the KServe objects of a pipeline file (offline)",
        **flags.doc(__doc__),
    )
    parser.add_argument("file", help="InferencePipeline YAML or JSON file ('-': stdin)")
    flags.add_output_flag(parser, "YAML documents (default) or a JSON List", default="yaml")
    parser.set_defaults(func=run)


def read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as err:
        raise CliError(f"cannot read {path}: {err.strerror or err}") from None


def run(args: argparse.Namespace) -> int:
    source = "stdin" if args.file == "-" else args.file
    docs = load_documents(read(args.file), source)
    objects = render_objects(docs, source, getattr(args, "namespace", None))
    for warning in lint_warnings(docs, source):
        print(warning, file=sys.stderr)
    print(documents(objects, args.output), flush=True)
    return 0
