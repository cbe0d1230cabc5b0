"""Command wiring: flags before and after the verb, errors, exit codes; kubeconfig helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline_operator.cli import client, flags, main
from tests import pipelines as p


def parse(*argv: str) -> flags.Target:
    return flags.target_of(main.build_parser().parse_args(argv))


def test_connection_flags_before_or_after_the_verb() -> None:
    assert parse("status", "clf") == flags.Target()
    assert parse("-n", "a", "--context", "c", "status", "clf") == flags.Target(None, "c", "a")
    assert parse("status", "clf", "--namespace", "b", "--kubeconfig", "k") == flags.Target(
        "k", None, "b"
    )


def test_verb_flags() -> None:
    args = main.build_parser().parse_args(["promote", "clf", "--full", "--no-wait"])
    assert (args.name, args.full, args.wait) == ("clf", True, False)
    args = main.build_parser().parse_args(["undo", "clf", "--to-revision", "3"])
    assert (args.to_revision, args.wait, args.timeout) == (3, True, flags.DEFAULT_WAIT_SECONDS)
    assert main.build_parser().parse_args(["ls", "-A"]).all_namespaces
    assert main.build_parser().parse_args(["resume", "clf"]).paused is False


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["promote"],
        ["status", "clf", "--timeout", "-1"],
        ["render", "f", "-o", "xml"],
        ["undo", "clf", "--to-revision", "x"],
        ["nope"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main.main(argv)
    assert exited.value.code == 2


def test_errors_are_one_line_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main.main(["render", str(tmp_path / "missing.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read ") and err.count("\n") == 1


def test_render_prints_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(p.classifier("clf", "demo")))
    assert main.main(["render", str(path)]) == 0
    kinds = [d["kind"] for d in yaml.safe_load_all(capsys.readouterr().out)]
    assert kinds == ["InferenceService", "InferenceService", "InferenceGraph"]


def test_a_missing_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(client.CliError, match=f"cannot load kubeconfig {tmp_path}/none"):
        client.Client(client.Target(kubeconfig=str(tmp_path / "none")))


def test_namespace_of_the_context() -> None:
    contexts = [{"name": "a", "context": {"namespace": "team-a"}}, {"name": "b", "context": {}}]
    assert client.context_namespace(contexts, contexts[0], None) == "team-a"
    assert client.context_namespace(contexts, contexts[0], "b") == "default"
    assert client.context_namespace(contexts, None, None) == "default"


def test_kubeconfig_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/env/config")
    assert client.kubeconfig_path("/flag") == "/flag"
    assert client.kubeconfig_path(None) == "/env/config"
    monkeypatch.delenv("KUBECONFIG")
    assert client.kubeconfig_path(None).endswith(".kube/config")


def test_connection_reason_drops_the_connection_repr() -> None:
    class RefusedError(Exception):
        reason = (
            "<urllib3.connection.HTTPSConnection object at 0x1>: Failed to establish a "
            "new connection: [Errno 111] Connection refused"
        )

    assert client._connection_reason(RefusedError()) == "[Errno 111] Connection refused"
