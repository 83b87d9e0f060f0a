"""Hyperliquid action payloads, with prices and sizes formatted from integers.

Prices go on the wire as whole ticks of the instrument (a power of ten on Hyperliquid) and
sizes as whole lots (``10**-szDecimals``): ``decimal_text`` writes an integer count of
``10**-decimals`` as the shortest decimal (no trailing zeros, never ``-0``), so no float is
ever printed. Key order matters for the signature (msgpack hashes the dict as built): orders
are ``a, b, p, s, r, t, c`` as the SDK builds them; ``f``/``a`` flags are never sent false.
"""

from __future__ import annotations

import math
from typing import Any

from market_maker.model import Instrument, Side

__all__ = [
    "ALO",
    "IOC",
    "batch_modify",
    "cancel_by_cloid",
    "cancel_by_oid",
    "decimal_text",
    "decimals_of",
    "noop",
    "order_action",
    "order_wire",
    "schedule_cancel",
]

ALO = {"limit": {"tif": "Alo"}}
IOC = {"limit": {"tif": "Ioc"}}


def decimal_text(units: int, decimals: int) -> str:
    """``units * 10**-decimals`` as text: ``decimal_text(105055, 0) == "105055"``,
    ``decimal_text(1230, 5) == "0.0123"``, ``decimal_text(0, 3) == "0"``."""
    if units == 0:
        return "0"
    sign = "-" if units < 0 else ""
    digits = str(abs(units))
    if decimals <= 0:
        return sign + digits + "0" * -decimals
    whole, frac = digits[:-decimals] or "0", digits[-decimals:].rjust(decimals, "0")
    frac = frac.rstrip("0")
    return sign + whole + ("." + frac if frac else "")


def decimals_of(step: float) -> int:
    """The decimals of a power-of-ten step (``0.001 -> 3``, ``1.0 -> 0``, ``10.0 -> -1``)."""
    if not (step > 0.0 and math.isfinite(step)):
        raise ValueError(f"not a step: {step!r}")
    d = -math.log10(step)
    n = math.floor(d + 0.5)
    if abs(d - n) > 1e-9:
        raise ValueError(f"{step!r} is not a power of ten")
    return n


def _units(value: float, step: float) -> int:
    return math.floor(value / step + 0.5)


def order_wire(
    instrument: Instrument,
    asset: int,
    side: Side,
    price: float,
    size: float,
    cloid: str,
    *,
    post_only: bool = True,
) -> dict[str, Any]:
    """A limit order, post-only (``Alo``) or immediate-or-cancel (``Ioc``), price and size
    snapped to whole ticks and lots."""
    tick, lot = instrument.tick_size, instrument.lot_size
    return {
        "a": asset,
        "b": side is Side.BUY,
        "p": decimal_text(_units(price, tick), decimals_of(tick)),
        "s": decimal_text(_units(size, lot), decimals_of(lot)),
        "r": False,
        "t": ALO if post_only else IOC,
        "c": cloid,
    }


def order_action(orders: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "order", "orders": orders, "grouping": "na"}


def cancel_by_cloid(asset: int, cloids: list[str]) -> dict[str, Any]:
    return {"type": "cancelByCloid", "cancels": [{"asset": asset, "cloid": c} for c in cloids]}


def cancel_by_oid(asset: int, oids: list[int]) -> dict[str, Any]:
    return {"type": "cancel", "cancels": [{"a": asset, "o": o} for o in oids]}


def batch_modify(modifies: list[tuple[str | int, dict[str, Any]]]) -> dict[str, Any]:
    """Cancel-replace each order (by cloid or oid) with the order wire given."""
    return {"type": "batchModify", "modifies": [{"oid": o, "order": w} for o, w in modifies]}


def noop() -> dict[str, Any]:
    """Does nothing but use its nonce: signed with the nonce of an action still in flight, it
    voids that action if it commits first (the action is then refused as a duplicate)."""
    return {"type": "noop"}


def schedule_cancel(time_ms: int | None) -> dict[str, Any]:
    """The dead man's switch at ``time_ms``; None removes it."""
    return (
        {"type": "scheduleCancel"}
        if time_ms is None
        else {"type": "scheduleCancel", "time": time_ms}
    )
