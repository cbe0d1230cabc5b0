"""Success conditions of analysis metrics: CEL expressions over one number, ``result``.

The language is CEL, the one the CRD's own rules and Kubernetes admission policies are
written in, evaluated with cel-python (no ``eval``). ``result`` (a double) is the only
variable; the condition must be true or false, e.g. ``result >= 0.99``,
``result < 500 && result > 0`` or ``!(result > 0.05)``. Numbers compare across int and
double (``result == 1``, ``0.5 < result``), as in Kubernetes.

A condition is compiled when the spec is validated: it must parse, name no other variable,
and give a boolean for sample results, or it is refused with :class:`ConditionError`. A NaN
result fails every condition.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from functools import lru_cache

import celpy
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, Result, base_functions

VARIABLE = "result"
# Results a condition is tried on when compiled: it must be true or false for each.
_SAMPLES = (0.0, 1.0, -1.0, 0.5)
_NUMBERS = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)


class ConditionError(ValueError):
    """A success condition that is not a valid CEL condition on ``result``."""


def _numeric(name: str, compare: Callable[[float, float], bool]) -> Callable[..., Result]:
    """``name`` with int, uint and double operands compared as numbers, as Kubernetes does."""
    fallback = base_functions[name]

    def function(left: Result, right: Result) -> Result:
        if isinstance(left, _NUMBERS) and isinstance(right, _NUMBERS):
            return celtypes.BoolType(compare(float(left), float(right)))
        return fallback(left, right)

    return function


_FUNCTIONS = {
    name: _numeric(name, compare)
    for name, compare in (
        ("_==_", operator.eq),
        ("_!=_", operator.ne),
        ("_<_", operator.lt),
        ("_<=_", operator.le),
        ("_>_", operator.gt),
        ("_>=_", operator.ge),
    )
}


def _judge(text: str, program: celpy.Runner, result: float) -> bool:
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
    program = env.program(tree, functions=_FUNCTIONS)
    for sample in _SAMPLES:
        _judge(text, program, sample)
    return program


def evaluate(text: str, result: float) -> bool:
    """Whether ``result`` satisfies the success condition ``text`` (never when NaN)."""
    program = compile_condition(text)
    return not math.isnan(result) and _judge(text, program, result)
