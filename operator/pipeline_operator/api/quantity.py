"""Kubernetes resource quantities by value (pure): ``"500m"`` and ``"0.5"`` are one amount."""

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


def canonical(value: str) -> str:
    """One spelling per amount (``"1000m"``, ``"1"`` and ``"1e3m"`` are all ``"1"``); a value
    that is no quantity stays as it is."""
    amount = quantity(value)
    return value if amount is None else format(amount.normalize(), "f")
