"""JSONPath into a web analysis metric's answer (``$.data.accuracy``), with jsonpath-ng
(its extended syntax: filters such as ``$.items[?(@.name == 'canary')].score``).

jsonpath-ng comes with the operator (its ``operator`` extra), not with the plugin's base
install: where it is missing, :data:`AVAILABLE` is False and paths are left for the operator
to check, as success conditions are.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


class PathError(ValueError):
    """A path that is no JSONPath, or an answer it does not select one value of."""


def _installed() -> bool:
    try:
        import jsonpath_ng  # noqa: F401
    except ImportError:
        return False
    return True


AVAILABLE = _installed()


@lru_cache(maxsize=256)
def compile_path(path: str) -> Any:
    """The parsed path; :class:`PathError` naming what is wrong when it is none."""
    from jsonpath_ng.exceptions import JSONPathError
    from jsonpath_ng.ext.parser import parse

    try:
        return parse(path)
    except JSONPathError as err:
        raise PathError(f"{path!r} is not a JSONPath: {err}") from None


def select(path: str, document: Any) -> list[Any]:
    """The values ``path`` selects in ``document`` (none, one or many)."""
    return [match.value for match in compile_path(path).find(document)]
