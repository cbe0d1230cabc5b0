"""GJSON paths: the language of Switch step conditions in KServe's InferenceGraph router.

The router takes a step when ``gjson.Get(request, condition).Exists()``. GJSON never refuses
a path: one that does not say what was meant (``confident == false`` looks up a key of that
name; ``$.a[0]`` is JSONPath) matches nothing, and the request fails with "None of the routes
matched" long after the pipeline was applied. :func:`check` holds a condition to GJSON's
path syntax (tidwall/gjson's SYNTAX.md) instead:

- components separated by ``.`` or ``|``, none empty;
- keys of letters, digits, ``_``, ``-``, ``:``, spaces and non-ASCII characters, the
  wildcards ``*`` and ``?``, and any other character escaped with ``\\`` (as gjson's own
  ``Escape`` writes them);
- ``#`` (length or each element), and queries ``#(path op value)`` or ``#(path)``, ``#``
  after them for all matches, with op one of ``== = != < <= > >= % !%`` and a value: a JSON
  string, a number, ``true``, ``false``, ``null``, a bare word or pattern, or one of
  ``~true ~false ~null ~*``;
- the built-in modifiers ``@name`` with an optional ``:argument``;
- multipaths ``[a,b]`` and ``{a,"key":b}``, and ``!`` JSON literals at the start of a path.
"""

from __future__ import annotations

import json

MODIFIERS = frozenset(
    {
        "pretty",
        "ugly",
        "reverse",
        "this",
        "flatten",
        "join",
        "valid",
        "keys",
        "values",
        "tostr",
        "fromstr",
        "group",
        "dig",
    }
)
OPERATORS = ("==", "!=", "<=", ">=", "!%", "=", "<", ">", "%")
TILDE_VALUES = ("true", "false", "null", "*")
_SEPARATORS = ".|"
_QUERY_STOP = "=!<>%)"
# Characters of an unquoted query value: a number, true, false, null, a word or a pattern.
_BARE = "_-.+*?"
_DECODER = json.JSONDecoder()


class PathError(ValueError):
    """A condition that is not a GJSON path."""


def _safe(char: str) -> bool:
    """Key characters that need no escape (gjson's ``isSafePathKeyChar``)."""
    return (char.isascii() and (char.isalnum() or char in "_-:" or char <= " ")) or char > "~"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, what: str) -> PathError:
        return PathError(f"{what} at column {self.pos + 1}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str, what: str) -> None:
        if self.peek() != char:
            raise self.error(f"expected {what}")
        self.pos += 1

    def json_value(self, what: str) -> object:
        try:
            value, self.pos = _DECODER.raw_decode(self.text, self.pos)
        except json.JSONDecodeError:
            raise self.error(f"expected {what}") from None
        return value

    def path(self, stop: str) -> None:
        """Components joined by ``.`` or ``|``, up to the end or a character of ``stop``."""
        self.component(stop, start=True)
        while self.peek() and self.peek() in _SEPARATORS:
            start = self.peek() == "|"
            self.pos += 1
            self.component(stop, start=start)
        char = self.peek()
        if char and char not in stop:
            raise self.error(f"unexpected {char!r}")

    def component(self, stop: str, start: bool) -> None:
        char = self.peek()
        if not char or char in _SEPARATORS or char in stop:
            raise self.error("empty path component")
        if char in "[{":
            self.multipath()
        elif char == "!" and start:
            self.pos += 1
            self.json_value("a JSON literal after '!'")
        elif char == "@":
            self.modifier(stop)
        elif char == "#":
            self.pos += 1
            if self.peek() == "[":
                raise self.error("'#[...]' is GJSON's old query syntax: write '#(...)'")
            if self.peek() == "(":
                self.query()
        else:
            self.key(stop)

    def key(self, stop: str) -> None:
        while (char := self.peek()) and char not in _SEPARATORS and char not in stop:
            if char == "\\":
                if self.pos + 1 == len(self.text):
                    raise self.error("'\\' escapes nothing")
                self.pos += 2
            elif char in "*?" or _safe(char):
                self.pos += 1
            else:
                raise self.error(
                    f"{char!r} in a key must be escaped as '\\{char}' (to compare values, "
                    "query an array: '#(key==value)')"
                )

    def modifier(self, stop: str) -> None:
        self.pos += 1
        begin = self.pos
        while self.peek().isascii() and (self.peek().isalnum() or self.peek() == "_"):
            self.pos += 1
        name = self.text[begin : self.pos]
        if name not in MODIFIERS:
            raise self.error(f"unknown modifier '@{name}' (a key starting with @ is '\\@')")
        if self.peek() != ":":
            return
        self.pos += 1
        if self.peek() and self.peek() in '{["':
            self.json_value(f"a JSON argument of @{name}")
            return
        begin = self.pos
        while (char := self.peek()) and char not in _SEPARATORS and char not in stop:
            self.pos += 1
        if self.pos == begin:
            raise self.error(f"expected an argument of @{name} after ':'")

    def query(self) -> None:
        self.pos += 1
        self.spaces()
        has_path = self.peek() not in _QUERY_STOP
        if has_path:
            self.path(_QUERY_STOP)
        self.spaces()
        operator = next((op for op in OPERATORS if self.text.startswith(op, self.pos)), None)
        if operator is None:
            if not has_path:
                raise self.error("expected a path or a comparison in the query")
        else:
            self.pos += len(operator)
            self.spaces()
            self.query_value()
            self.spaces()
        self.expect(")", "')' closing the query")
        if self.peek() == "#":
            self.pos += 1

    def query_value(self) -> None:
        if self.peek() == "~":
            self.pos += 1
            value = next((v for v in TILDE_VALUES if self.text.startswith(v, self.pos)), None)
            if value is None:
                raise self.error("expected one of ~true, ~false, ~null, ~*")
            self.pos += len(value)
        elif self.peek() and self.peek() in '"[{':
            if isinstance(self.json_value("a JSON string"), dict | list):
                raise self.error("a query compares with a string, number, true, false or null")
        else:
            begin = self.pos
            while (char := self.peek()) and (char > "~" or char.isalnum() or char in _BARE):
                self.pos += 1
            if self.pos == begin:
                raise self.error('expected a value: "text", a number, true, false or null')

    def multipath(self) -> None:
        close = "]" if self.peek() == "[" else "}"
        self.pos += 1
        while True:
            if close == "}" and self.peek() == '"':
                self.json_value("a JSON string key")
                self.expect(":", "':' after the key")
            self.path(f",{close}")
            if self.peek() == close:
                self.pos += 1
                return
            self.expect(",", f"',' or '{close}'")

    def spaces(self) -> None:
        while self.peek() and self.peek() <= " ":
            self.pos += 1


def check(condition: str) -> None:
    """Raise :class:`PathError` saying where ``condition`` is not a GJSON path."""
    _Parser(condition).path("")
