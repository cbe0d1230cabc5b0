"""How a live child drifted from the planned one, read from its managedFields (pure).

Server-side apply records which field manager owns every field it set. The operator applies
its children under one manager, so a child needs attention when:

- a field differs from the plan (a subset comparison: defaults added by the apiserver or
  KServe's webhook are ignored);
- the operator's apply entry owns a field the plan no longer sets (applying again drops it);
- another manager (``kubectl patch``, ``kubectl edit``, another controller) owns a field of
  the spec: set to something else than the plan's (applying again with force takes it back,
  e.g. a container list edited by hand, which is atomic) or not in the plan at all (it is
  removed, e.g. a GPU limit or a graph node added by hand).

Fields that no manager owns are the defaults KServe's webhook filled in during the operator's
own apply, and are left alone, as are metadata fields other controllers own (finalizers,
labels).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline_operator.core.objects import is_subset

_MISSING = object()


@dataclass(frozen=True)
class Drift:
    """What brings a live child back to the plan: apply it again, remove fields, or both."""

    reapply: bool = False
    remove: tuple[str, ...] = field(default=())
    """JSON pointers (RFC 6901) into the live object, in an order safe to remove them."""


def drift(desired: dict[str, Any], live: dict[str, Any], manager: str) -> Drift:
    """How ``live`` differs from ``desired``, which ``manager`` server-side applies."""
    entries = live.get("metadata", {}).get("managedFields") or []
    ours = [e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"]
    others = [e for e in entries if e not in ours and not e.get("subresource")]
    reapply = not is_subset(desired, live) or any(_unwanted(_fields(e), desired) for e in ours)
    remove: list[str] = []
    for entry in others:
        owned = _fields(entry).get("f:spec") or {}
        for pointer, differs in _foreign(owned, desired.get("spec"), live.get("spec"), "/spec"):
            if differs:
                reapply = True
            elif pointer not in remove:
                remove.append(pointer)
    return Drift(reapply=reapply, remove=tuple(sorted(remove, key=_order, reverse=True)))


def _fields(entry: Mapping[str, Any]) -> dict[str, Any]:
    return dict(entry.get("fieldsV1") or {})


def _step(value: Any, key: str) -> tuple[Any, str]:
    """The element a fieldsV1 key names in ``value``, and its JSON-pointer token."""
    kind, _, name = key.partition(":")
    if kind == "f":
        if isinstance(value, dict) and name in value:
            return value[name], name.replace("~", "~0").replace("/", "~1")
        return _MISSING, ""
    if not isinstance(value, list):
        return _MISSING, ""
    if kind == "i":
        index = int(name)
        return (value[index], name) if index < len(value) else (_MISSING, "")
    wanted = json.loads(name)
    for index, item in enumerate(value):
        if item == wanted if kind == "v" else _keyed(item, wanted):
            return item, str(index)
    return _MISSING, ""


def _keyed(item: Any, key: Mapping[str, Any]) -> bool:
    """Whether a list item is the one a ``k:`` key names (its key fields match)."""
    return isinstance(item, dict) and all(item.get(k) == v for k, v in key.items())


def _children(owned: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """A fieldset's members; ``.`` only says that the element itself is owned."""
    return ((key, sub) for key, sub in owned.items() if key != ".")


def _unwanted(owned: Mapping[str, Any], desired: Any) -> bool:
    """Whether the fieldset owns anything that ``desired`` does not set."""
    for key, sub in _children(owned):
        value, _ = _step(desired, key)
        if value is _MISSING or _unwanted(sub, value):
            return True
    return False


def _foreign(
    owned: Mapping[str, Any], desired: Any, live: Any, pointer: str
) -> Iterator[tuple[str, bool]]:
    """Fields another manager owns: (pointer, True) where the plan sets them otherwise,
    (pointer, False) where the plan does not set them at all."""
    for key, sub in _children(owned):
        current, token = _step(live, key)
        if current is _MISSING:
            continue
        wanted, _ = _step(desired, key)
        here = f"{pointer}/{token}"
        if wanted is _MISSING:
            yield here, False
        elif any(True for _ in _children(sub)):
            yield from _foreign(sub, wanted, current, here)
        elif wanted != current:
            yield here, True


def _order(pointer: str) -> list[tuple[int, int | str]]:
    """Sort key: removing in descending order keeps the list indices of the rest valid."""
    return [(0, int(t)) if t.isdigit() else (1, t) for t in pointer.split("/")]
