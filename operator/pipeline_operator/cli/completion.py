"""``kubectl pipeline completion bash|zsh``: a shell completion script for ``kubectl-pipeline``.

``kubectl pipeline ...`` completes through kubectl's own completion (kubectl 1.26 or later,
``source <(kubectl completion bash)``), which runs the ``kubectl_complete-pipeline``
executable installed with the plugin; the scripts printed here complete the
``kubectl-pipeline`` executable itself. Both ask ``kubectl-pipeline __complete WORDS...``,
which answers as Cobra programs (kubectl among them) do: one candidate per line, then
``:DIRECTIVE``. It completes commands, flags, flag values (``-o``, ``--context``, ``-n``)
and pipeline names, read from the cluster the command line's flags select.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline_operator.cli import flags
from pipeline_operator.cli.client import Client, Target, context_names
from pipeline_operator.cli.errors import CliError

VERB = "__complete"
SHELLS = ("bash", "zsh")
# Cobra's ShellCompDirective bits.
FILES = 0  # no candidates: let the shell complete file names
NO_FILES = 4
# Values read from the cluster or the kubeconfig, by the dest of the argument they fill.
DYNAMIC = {"name": "pipelines", "namespace": "namespaces", "context": "contexts"}
PATHS = {"file", "kubeconfig"}

BASH = """\
# bash completion for kubectl-pipeline (kubectl pipeline ...: kubectl's own completion,
# kubectl 1.26+, runs the kubectl_complete-pipeline executable installed with the plugin)
_kubectl_pipeline() {
    local cur=${COMP_WORDS[COMP_CWORD]} out directive
    out=$(kubectl-pipeline __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return
    directive=${out##*:}
    out=${out%:*}
    local IFS=$'\\n'
    COMPREPLY=($(compgen -W "$out" -- "$cur"))
    if (( ${#COMPREPLY[@]} == 0 && (directive & 4) == 0 )); then
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -F _kubectl_pipeline kubectl-pipeline
"""

ZSH = """\
#compdef kubectl-pipeline
# zsh completion for kubectl-pipeline (kubectl pipeline ...: kubectl's own completion,
# kubectl 1.26+, runs the kubectl_complete-pipeline executable installed with the plugin)
_kubectl_pipeline() {
    local -a lines
    lines=("${(@f)$(kubectl-pipeline __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    local directive=${lines[-1]#:}
    lines=("${(@)lines[1,-2]}")
    if (( ${#lines} )); then
        compadd -- "${(@)lines}"
    elif (( (${directive:-0} & 4) == 0 )); then
        _files
    fi
}
compdef _kubectl_pipeline kubectl-pipeline
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH}

Lookup = Callable[[str, Target], list[str]]

# -- pure ------------------------------------------------------------------------------------


@dataclass
class Position:
    """Where a partial command line stands: the verb's parser (the top one before the verb),
    how many positional words the verb has, the option whose value comes next, and the
    connection flags given."""

    parser: argparse.ArgumentParser
    verb: str | None = None
    positionals: int = 0
    pending: argparse.Action | None = None
    given: dict[str, str] = field(default_factory=dict)

    def target(self) -> Target:
        return Target(
            self.given.get("kubeconfig"), self.given.get("context"), self.given.get("namespace")
        )


def verbs(top: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The commands (aliases included) and their parsers."""
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def option(parser: argparse.ArgumentParser, word: str) -> argparse.Action | None:
    return parser._option_string_actions.get(word)


def locate(top: argparse.ArgumentParser, words: Sequence[str]) -> Position:
    """Walk the complete words of a command line (the one being typed excluded)."""
    at = Position(top)
    for word in words:
        if at.pending is not None:
            at.given[at.pending.dest] = word
            at.pending = None
        elif word.startswith("-") and word != "-":
            name, has_value, value = word.partition("=")
            action = option(at.parser, name)
            if action is not None and action.nargs != 0:
                if has_value:
                    at.given[action.dest] = value
                else:
                    at.pending = action
        elif at.verb is None:
            parser = verbs(top).get(word)
            if parser is None:
                return Position(argparse.ArgumentParser(add_help=False), word)
            at.parser, at.verb = parser, word
        else:
            at.positionals += 1
    return at


def _value_candidates(
    action: argparse.Action, at: Position, lookup: Lookup
) -> tuple[list[str], int]:
    if action.choices is not None:
        return [str(c) for c in action.choices], NO_FILES
    if action.dest in DYNAMIC:
        return lookup(DYNAMIC[action.dest], at.target()), NO_FILES
    return [], FILES if action.dest in PATHS else NO_FILES


def candidates(
    top: argparse.ArgumentParser, words: Sequence[str], lookup: Lookup
) -> tuple[list[str], int]:
    """What may come as the last of ``words`` (the word being typed, maybe empty), and the
    Cobra directive."""
    *before, current = list(words) or [""]
    at = locate(top, before)
    if at.pending is not None:
        found, directive = _value_candidates(at.pending, at, lookup)
    elif current.startswith("-"):
        found = [o for a in at.parser._actions for o in a.option_strings]
        directive = NO_FILES
    elif at.verb is None:
        found, directive = [v for v in verbs(top) if not v.startswith("_")], NO_FILES
    else:
        positional = [a for a in at.parser._actions if not a.option_strings]
        if at.positionals >= len(positional):
            return [], NO_FILES
        found, directive = _value_candidates(positional[at.positionals], at, lookup)
    return [c for c in found if c.startswith(current)], directive


def answer(found: list[str], directive: int) -> str:
    """The reply of ``__complete``: one candidate per line, then ``:DIRECTIVE``."""
    return "".join(f"{c}\n" for c in found) + f":{directive}\n"


# -- API -------------------------------------------------------------------------------------


def lookup(kind: str, target: Target) -> list[str]:
    """Pipeline names, namespaces or kubeconfig contexts; nothing when they cannot be read."""
    try:
        if kind == "contexts":
            return context_names(target.kubeconfig)
        client = Client(target)
        if kind == "namespaces":
            return client.namespace_names()
        return client.pipeline_names(client.namespace)
    except CliError:
        return []


def complete(top: argparse.ArgumentParser, words: Sequence[str]) -> int:
    """``kubectl-pipeline __complete WORDS...``."""
    sys.stdout.write(answer(*candidates(top, words, lookup)))
    return 0


# -- wiring ----------------------------------------------------------------------------------


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "completion", help="print a shell completion script", **flags.doc(__doc__)
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(SCRIPTS[args.shell])
    return 0
