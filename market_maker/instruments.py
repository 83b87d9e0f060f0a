"""Exchange rules by venue and symbol: the shipped table (``instruments.toml``) plus overrides.

``resolve_instrument("binance-usdm", "ETHUSDT")`` gives ETHUSDT's tick, lot and minimum
notional; ``[instrument]`` fields in the config replace table values, and a symbol the table
does not know needs them. Hyperliquid has no fixed tick: prices carry at most 5 significant
figures and ``6 - szDecimals`` decimals (integers always allowed), so its tick is derived from a
price of the market (``hyperliquid_tick``) and the sizer applies the significant-figure rule.
"""

from __future__ import annotations

import math
import tomllib
from functools import cache
from importlib import resources

from market_maker.config import InstrumentConfig
from market_maker.errors import ConfigError
from market_maker.model import Instrument

__all__ = ["VENUES", "hyperliquid_tick", "known_symbols", "resolve_instrument"]

VENUES = ("binance-usdm", "hyperliquid")
_HL_MAX_DECIMALS = 6  # perps
_HL_SIG_FIGS = 5


@cache
def _table() -> dict[str, dict[str, dict[str, float]]]:
    text = resources.files("market_maker").joinpath("instruments.toml").read_text("utf-8")
    return tomllib.loads(text)


def known_symbols(venue: str) -> list[str]:
    """Symbols the shipped table knows on ``venue``."""
    return sorted(_table().get(venue, {}))


def hyperliquid_tick(price: float, sz_decimals: int) -> float:
    """The price step at ``price``: 5 significant figures, at most ``6 - sz_decimals`` decimals,
    whole numbers always allowed."""
    finest = 10.0 ** -(_HL_MAX_DECIMALS - sz_decimals)
    if not (price > 0.0 and math.isfinite(price)):
        return finest
    sig = 10.0 ** (math.floor(math.log10(price)) - (_HL_SIG_FIGS - 1))
    return max(finest, min(1.0, sig))


def resolve_instrument(
    venue: str,
    symbol: str,
    *,
    price: float | None = None,
    overrides: InstrumentConfig | None = None,
) -> Instrument:
    """The rules of ``symbol`` on ``venue``: the table's, with ``overrides`` applied.

    ``price`` (a price of the market) sets Hyperliquid's tick. Raises ``ConfigError`` naming the
    flags to pass when the symbol is unknown and the overrides do not say enough.
    """
    o = overrides or InstrumentConfig()
    entry = _table().get(venue, {}).get(symbol.upper() if venue == "binance-usdm" else symbol, {})
    if venue == "hyperliquid":
        sz = o.sz_decimals if o.sz_decimals is not None else entry.get("sz_decimals")
        if sz is None and o.lot_size is None:
            raise ConfigError(
                f"unknown Hyperliquid symbol {symbol!r}: pass --sz-decimals N "
                "(or [instrument] sz_decimals in the config)"
            )
        if sz is None:
            sz = max(0, -math.floor(math.log10(o.lot_size or 1.0) + 1e-9))
        sz = int(sz)
        lot = o.lot_size if o.lot_size is not None else 10.0**-sz
        tick = o.tick_size if o.tick_size is not None else hyperliquid_tick(price or 0.0, sz)
        return Instrument(
            symbol=symbol,
            tick_size=tick,
            lot_size=lot,
            min_notional=_pick(o.min_notional, entry.get("min_notional"), 10.0),
            max_sig_figs=_HL_SIG_FIGS,
            max_price_decimals=_HL_MAX_DECIMALS - sz,
        )
    step = o.tick_size if o.tick_size is not None else entry.get("tick_size")
    size_step = o.lot_size if o.lot_size is not None else entry.get("lot_size")
    if step is None or size_step is None:
        raise ConfigError(
            f"unknown symbol {symbol!r} on {venue}: pass --tick-size, --lot-size and "
            "--min-notional (or set them under [instrument] in the config)"
        )
    return Instrument(
        symbol=symbol.upper(),
        tick_size=float(step),
        lot_size=float(size_step),
        min_notional=_pick(o.min_notional, entry.get("min_notional"), 0.0),
    )


def _pick(*values: float | None) -> float:
    return float(next(v for v in values if v is not None))
