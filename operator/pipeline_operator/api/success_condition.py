"""Success conditions of analysis metrics: CEL expressions over one number, ``result``.

The language is CEL, the one the CRD's own rules and Kubernetes admission policies are
written in, evaluated with cel-python (no ``eval``). ``result`` (a double) is the only
variable; the condition must be true or false, e.g. ``result >= 0.99``,
``result < 500 && result > 0`` or ``!(result > 0.05)``. Numbers compare across int and
double (``result == 1``, ``0.5 < result``), as in Kubernetes.

A condition is compiled when the spec is validated: it must parse, name no other variable,
and give a boolean for sample results, or it is refused with :class:`ConditionError`. A NaN
result fails every condition.

cel-python comes with the operator (its ``operator`` extra), not with the plugin's base
install: where it is missing, :data:`AVAILABLE` is False and a spec's conditions are left for
the operator to check.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import celpy

VARIABLE = "result"
# Results a condition is tried on when compiled: it must be true or false for each.
_SAMPLES = (0.0, 1.0, -1.0, 0.5)


def _installed() -> bool:
    try:
        import celpy  # noqa: F401
    except ImportError:
        return False
    return True


AVAILABLE = _installed()
"""Whether cel-python is installed: the operator always has it; the plugin may not."""


class ConditionError(ValueError):
    """A success condition that is not a valid CEL condition on ``result``."""


@lru_cache(maxsize=1)
def _functions() -> dict[str, Callable[..., Any]]:
    """The comparisons, with int, uint and double operands compared as numbers, as
    Kubernetes does."""
    from celpy import celtypes
    from celpy.evaluation import base_functions

    numbers = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)

    def numeric(name: str, compare: Callable[[float, float], bool]) -> Callable[..., Any]:
        fallback = base_functions[name]

        def function(left: Any, right: Any) -> Any:
            if isinstance(left, numbers) and isinstance(right, numbers):
                return celtypes.BoolType(compare(float(left), float(right)))
            return fallback(left, right)

        return function

    comparisons = (
        ("_==_", operator.eq),
        ("_!=_", operator.ne),
        ("_<_", operator.lt),
        ("_<=_", operator.le),
        ("_>_", operator.gt),
        ("_>=_", operator.ge),
    )
    return {name: numeric(name, compare) for name, compare in comparisons}


def _judge(text: str, program: celpy.Runner, result: float) -> bool:
    from celpy import celtypes
    from celpy.evaluation import CELEvalError

    try:
        verdict = program.evaluate({VARIABLE: celtypes.DoubleType(result)})
    except CELEvalError as err:
        detail = str(err.args[0]).split(" (in activation")[0]
        raise ConditionError(f"{text!r} fails on result {result:g}: {detail}") from None
    if not isinstance(verdict, celtypes.BoolType):
        raise ConditionError(f"{text!r} is not true or false but {verdict!r} for {result:g}")
    return bool(verdict)


@lru_cache(maxsize=256)
def compile_condition(text: str) -> celpy.Runner:
    """The program of ``text``; raise :class:`ConditionError` when it is not a condition."""
    import celpy
    from celpy.celparser import CELParseError

    env = celpy.Environment()
    try:
        tree = env.compile(text)
    except CELParseError as err:
        where = f" at column {err.column}" if err.column else ""
        raise ConditionError(f"{text!r} is not a CEL expression: syntax error{where}") from None
    names = {str(t.children[0]) for t in tree.iter_subtrees() if t.data == "ident"}
    if names - {VARIABLE}:
        unknown = ", ".join(sorted(names - {VARIABLE}))
        raise ConditionError(f"{text!r} names {unknown}: the only variable is {VARIABLE}")
    program = env.program(tree, functions=_functions())
    for sample in _SAMPLES:
        _judge(text, program, sample)
    return program


def evaluate(text: str, result: float) -> bool:
    """Whether ``result`` satisfies the success condition ``text`` (never when NaN)."""
    program = compile_condition(text)
    return not math.isnan(result) and _judge(text, program, result)
