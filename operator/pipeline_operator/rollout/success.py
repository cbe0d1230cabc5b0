"""Success conditions of analysis metrics: a small, safe language over one number, ``result``.

Grammar (no ``eval``)::

    condition  := disjunct (("or" | "||") disjunct)*
    disjunct   := negation (("and" | "&&") negation)*
    negation   := ("not" | "!") negation | "(" condition ")" | comparison
    comparison := operand ("<" | "<=" | ">" | ">=" | "==" | "!=") operand
    operand    := "result" | ["-"] number

e.g. ``result >= 0.99``, ``result < 500 and result > 0``, ``not (result > 0.05)``.
A NaN result fails every comparison.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from functools import lru_cache

Predicate = Callable[[float], bool]

_NUMBER = r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_TOKEN = re.compile(
    rf"\s*(?:(?P<number>{_NUMBER})"
    r"|(?P<symbol><=|>=|==|!=|&&|\|\||[<>!()\-])"
    r"|(?P<word>[A-Za-z_]\w*))"
)
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_OR = {"or", "||"}
_AND = {"and", "&&"}
_NOT = {"not", "!"}


class ConditionError(ValueError):
    """A success condition that does not parse."""


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ConditionError(f"unexpected {text[pos:].strip()!r} in {text!r}")
        tokens.append(match.group(match.lastgroup or "word"))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def fail(self, expected: str) -> ConditionError:
        found = self.tokens[self.pos] if self.pos < len(self.tokens) else "end of condition"
        return ConditionError(f"expected {expected}, found {found!r} in {self.text!r}")

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.condition()
        if self.peek() is not None:
            raise self.fail("'and', 'or' or the end")
        return predicate

    def condition(self) -> Predicate:
        parts = [self.disjunct()]
        while self.peek() in _OR:
            self.take()
            parts.append(self.disjunct())
        return parts[0] if len(parts) == 1 else lambda r: any(p(r) for p in parts)

    def disjunct(self) -> Predicate:
        parts = [self.negation()]
        while self.peek() in _AND:
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else lambda r: all(p(r) for p in parts)

    def negation(self) -> Predicate:
        if self.peek() in _NOT:
            self.take()
            inner = self.negation()
            return lambda r: not inner(r)
        if self.peek() == "(":
            self.take()
            inner = self.condition()
            if self.peek() != ")":
                raise self.fail("')'")
            self.take()
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        left = self.operand()
        symbol = self.peek()
        if symbol not in _COMPARE:
            raise self.fail("a comparison (<, <=, >, >=, ==, !=)")
        compare = _COMPARE[self.take()]
        right = self.operand()
        return lambda r: compare(left(r), right(r))

    def operand(self) -> Callable[[float], float]:
        token = self.peek()
        if token == "result":
            self.take()
            return lambda r: r
        sign = 1.0
        if token == "-":
            self.take()
            sign, token = -1.0, self.peek()
        if token is None or not re.fullmatch(_NUMBER, token):
            raise self.fail("'result' or a number")
        value = sign * float(self.take())
        return lambda _r: value


@lru_cache(maxsize=256)
def compile_condition(text: str) -> Predicate:
    """Parse ``text`` once; raise :class:`ConditionError` when it is not a valid condition."""
    return _Parser(text).parse()


def evaluate(text: str, result: float) -> bool:
    """Whether ``result`` satisfies the success condition ``text``."""
    return compile_condition(text)(result)
