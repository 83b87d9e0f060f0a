"""Hyperliquid builder-deployed perpetuals (HIP-3): names, asset ids and fees (pure).

Facts (``reference/hyperliquid-verified.md`` section 7; info ``perpDexs``): a builder dex's
market is named ``dex:COIN``; its asset id is ``100000 + perp_dex_index * 10000 +
index_in_meta``, where ``perp_dex_index`` is the dex's position in ``perpDexs`` (index 0, null,
is Hyperliquid's own dex) and ``index_in_meta`` the market's position in the dex's ``meta``
(``{"type": "meta", "dex": name}``); margin is isolated by default; the deployer runs the oracle
(``oracleUpdater``) and may halt the market. Fees scale with the dex's ``deployerFeeScale``:
users pay the account's rates times ``scale + max(scale, 1)`` (2x at scale 1) [3rd-party: an
SDK's measurement on mainnet; growth mode, which cuts fees by 90 % or more, is not modelled].
"""

from __future__ import annotations

__all__ = ["asset_id", "fee_multiplier", "split_coin"]

_BASE = 100_000
_PER_DEX = 10_000


def split_coin(name: str) -> tuple[str, str] | None:
    """``("xyz", "TSLA")`` for ``xyz:TSLA``; None for a coin of Hyperliquid's own dex."""
    dex, sep, coin = name.partition(":")
    if not sep:
        return None
    if not dex or not coin:
        raise ValueError(f"{name!r}: a builder dex's market is named dex:COIN")
    return dex, coin


def asset_id(dex_index: int, index_in_meta: int) -> int:
    """The asset id of market ``index_in_meta`` of perp dex ``dex_index`` (at least 1)."""
    if dex_index < 1 or not 0 <= index_in_meta < _PER_DEX:
        raise ValueError(f"no HIP-3 asset at dex {dex_index}, index {index_in_meta}")
    return _BASE + dex_index * _PER_DEX + index_in_meta


def fee_multiplier(scale: float) -> float:
    """What a dex's ``deployerFeeScale`` does to the user's fee: ``scale + max(scale, 1)``."""
    if not scale >= 0.0:
        raise ValueError(f"deployerFeeScale {scale!r} is not a non-negative number")
    return scale + max(scale, 1.0)
