"""Shell completion: the ``__complete`` answers, the bash and zsh scripts, and kubectl's own
completion of ``kubectl pipeline`` through ``kubectl_complete-pipeline``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_operator.cli import completion, main
from pipeline_operator.cli.client import Target
from tests.harness import ToolSet

BIN = Path(sys.prefix) / "bin"
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "KUBECONFIG": "/none"}

looked_up: list[tuple[str, Target]] = []


def lookup(kind: str, target: Target) -> list[str]:
    looked_up.append((kind, target))
    return {"pipelines": ["clf", "rag"], "namespaces": ["prod"], "contexts": ["kind"]}[kind]


def complete(*words: str) -> tuple[list[str], int]:
    return completion.candidates(main.build_parser(), words, lookup)


def test_commands_flags_and_choices() -> None:
    verbs, directive = complete("")
    assert {"list", "status", "promote", "history", "completion"} <= set(verbs)
    assert completion.VERB not in verbs and directive == completion.NO_FILES
    assert complete("pro") == (["promote"], completion.NO_FILES)
    assert complete("status", "clf", "--w")[0] == ["--watch"]
    assert complete("status", "clf", "-o", "") == (["json", "yaml"], completion.NO_FILES)
    assert complete("history", "clf", "--output=")[0] == []  # values after "=": not offered
    assert complete("completion", "z")[0] == ["zsh"]
    assert complete("status", "clf", "--timeout", "") == ([], completion.NO_FILES)
    assert complete("status", "clf", "") == ([], completion.NO_FILES)  # one name only


def test_files_where_a_path_goes() -> None:
    assert complete("render", "") == ([], completion.FILES)
    assert complete("--kubeconfig", "") == ([], completion.FILES)


def test_names_come_from_the_cluster_the_flags_select() -> None:
    looked_up.clear()
    assert complete("-n", "prod", "promote", "c") == (["clf"], completion.NO_FILES)
    assert complete("status", "--context=kind", "--kubeconfig", "k", "") == (
        ["clf", "rag"],
        completion.NO_FILES,
    )
    assert complete("status", "-n", "") == (["prod"], completion.NO_FILES)
    assert complete("--context", "") == (["kind"], completion.NO_FILES)
    assert looked_up == [
        ("pipelines", Target(namespace="prod")),
        ("pipelines", Target("k", "kind", None)),
        ("namespaces", Target()),
        ("contexts", Target()),
    ]


def test_an_unknown_command_completes_nothing() -> None:
    assert complete("frobnicate", "") == ([], completion.NO_FILES)


def test_the_answer_is_cobras(capsys: pytest.CaptureFixture[str]) -> None:
    assert completion.answer(["a", "b"], 4) == "a\nb\n:4\n"
    # no cluster there: names complete to nothing, quietly
    assert main.main(["__complete", "--kubeconfig", "/none", "status", ""]) == 0
    assert capsys.readouterr() == (":4\n", "")


def output(*argv: str) -> list[str]:
    """The lines a command prints, with the venv's executables on PATH."""
    done = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=60, check=True)
    return done.stdout.splitlines()


def bash(script: str) -> list[str]:
    return output("bash", "-c", f"source <(kubectl-pipeline completion bash)\n{script}")


def test_the_bash_script_completes_kubectl_pipeline(tmp_path: Path) -> None:
    reply = "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _kubectl_pipeline; "
    reply += 'printf "%s\\n" "${COMPREPLY[@]}"'
    assert bash(f"COMP_WORDS=(kubectl-pipeline pro); {reply}") == ["promote"]
    assert bash(f'COMP_WORDS=(kubectl-pipeline status clf -o ""); {reply}') == ["json", "yaml"]
    (tmp_path / "pipeline.yaml").write_text("")
    assert bash(f"COMP_WORDS=(kubectl-pipeline render {tmp_path}/pipe); {reply}") == [
        f"{tmp_path}/pipeline.yaml"
    ]
    assert bash("complete -p kubectl-pipeline") == [
        "complete -F _kubectl_pipeline kubectl-pipeline"
    ]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_the_zsh_script_completes_kubectl_pipeline() -> None:
    # Outside a completion widget: compadd and _files print what they would offer.
    stubs = 'compdef() { :; }; compadd() { [[ $1 == -- ]] && shift; print -l -- "$@"; }; '
    stubs += "_files() { print FILES; }; source <(kubectl-pipeline completion zsh); "
    calls = [
        ("words=(kubectl-pipeline st); CURRENT=2", ["status"]),
        ('words=(kubectl-pipeline history clf -o ""); CURRENT=5', ["json", "yaml"]),
        ('words=(kubectl-pipeline render ""); CURRENT=3', ["FILES"]),
    ]
    for words, expected in calls:
        assert output("zsh", "-c", f"{stubs}{words}; _kubectl_pipeline") == expected, words


def test_kubectl_completes_the_plugin_through_kubectl_complete_pipeline(tools: ToolSet) -> None:
    kubectl = str(tools.binary("kubectl"))
    assert output(kubectl, "__complete", "pipeline", "-n", "x", "hist")[:2] == ["history", ":4"]
