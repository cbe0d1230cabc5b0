"""Pure helpers over Kubernetes objects as dicts: subset comparison, merge patches, conditions."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_SUFFIXES: dict[str, Decimal] = {
    **{"": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3")},
    **{"k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9},
    **{"T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18},
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(?:([eE][+-]?[0-9]+)|([a-zA-Z]*))$")
_RESOURCE_LISTS = ("requests", "limits")


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity's value (``"500m"`` and ``"0.5"`` alike), None if it is none."""
    match = _QUANTITY.match(str(value)) if isinstance(value, str | int) else None
    if match is None or (match[3] or "") not in _SUFFIXES:
        return None
    try:
        number = Decimal(match[1] + (match[2] or ""))
    except InvalidOperation:
        return None
    return number * _SUFFIXES[match[3] or ""]


def is_subset(desired: Any, live: Any, *, quantities: bool = False) -> bool:
    """Whether every field of ``desired`` has the same value in ``live``.

    Fields the apiserver or a webhook adds (defaults, status, managedFields) are ignored, so a
    child whose fields we own are unchanged needs no write; a field edited by hand does.
    Values of resource lists (``requests``, ``limits``) compare as quantities: KServe's
    webhook stores ``cpu: "0.5"`` as ``500m``, the same amount.
    """
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            key in live
            and is_subset(value, live[key], quantities=quantities or key in _RESOURCE_LISTS)
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, v) for d, v in zip(desired, live, strict=True))
        )
    if desired == live:
        return True
    return quantities and quantity(desired) is not None and quantity(desired) == quantity(live)


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns ``old`` into ``new`` (empty when equal)."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif value != before or key not in old:
            patch[key] = value
    return patch


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The status condition of the given type, if any."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def ref(obj: dict[str, Any]) -> str:
    """``Kind namespace/name`` for messages."""
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')} {meta.get('namespace')}/{meta.get('name')}"


def controller_uid(obj: dict[str, Any]) -> str | None:
    """The uid of the object's controller (its ownerReference with controller: true)."""
    for owner in obj.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("controller"):
            return str(owner.get("uid"))
    return None
