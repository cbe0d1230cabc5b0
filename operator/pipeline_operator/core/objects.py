"""Pure helpers over Kubernetes objects as dicts: subset comparison, merge patches, conditions."""

from __future__ import annotations

from typing import Any

from pipeline_operator.api.quantity import quantity

_RESOURCE_LISTS = ("requests", "limits")


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
