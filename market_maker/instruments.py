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
from typing import Any

from market_maker.config import InstrumentConfig
from market_maker.errors import ConfigError
from market_maker.model import Instrument, InstrumentKind

__all__ = [
    "VENUES",
    "base_and_quote",
    "hyperliquid_tick",
    "known_symbols",
    "resolve_instrument",
    "venue_fees",
]

VENUES = ("binance-usdm", "binance-coinm", "binance-spot", "hyperliquid")
_KIND_OF_VENUE = {
    "binance-usdm": InstrumentKind.LINEAR,
    "binance-coinm": InstrumentKind.INVERSE,
    "binance-spot": InstrumentKind.SPOT,
    "hyperliquid": InstrumentKind.LINEAR,
}
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "USD")
_HL_MAX_DECIMALS = 6  # perps
_HL_SIG_FIGS = 5


@cache
def _table() -> dict[str, dict[str, dict[str, Any]]]:
    text = resources.files("market_maker").joinpath("instruments.toml").read_text("utf-8")
    return tomllib.loads(text)


def known_symbols(venue: str) -> list[str]:
    """Symbols the shipped table knows on ``venue``."""
    return sorted(_table().get(venue, {})) if venue in VENUES else []


def venue_fees(venue: str) -> tuple[float | None, float | None]:
    """The venue's base ``(maker_bps, taker_bps)`` from the table, None where it has none."""
    fees = _table().get("fees", {}).get(venue, {})
    maker, taker = fees.get("maker_fee_bps"), fees.get("taker_fee_bps")
    return (
        None if maker is None else float(maker),
        None if taker is None else float(taker),
    )


def base_and_quote(symbol: str) -> tuple[str, str]:
    """``("ETH", "USD")`` for ``ETHUSD_PERP``, ``("BTC", "USDT")`` for ``BTCUSDT``; a
    Hyperliquid coin (``BTC``) is quoted in USD."""
    name = symbol.upper().partition("_")[0]
    for quote in _QUOTES:
        if name.endswith(quote) and len(name) > len(quote):
            return name[: -len(quote)], quote
    return name, "USD"


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
    key = symbol if venue == "hyperliquid" else symbol.upper()
    entry = _table().get(venue, {}).get(key, {}) if venue in VENUES else {}
    maker, taker = venue_fees(venue)
    maker = _pick_opt(o.maker_fee_bps, entry.get("maker_fee_bps"), maker)
    taker = _pick_opt(o.taker_fee_bps, entry.get("taker_fee_bps"), taker)
    kind = InstrumentKind(
        str(o.kind or entry.get("kind") or _KIND_OF_VENUE.get(venue, InstrumentKind.LINEAR))
    )
    base, quote = base_and_quote(symbol)
    settlement = o.settlement_currency or entry.get("settlement_currency")
    if settlement is None:
        settlement = base if kind is InstrumentKind.INVERSE else quote
    contract = _pick(o.contract_size, entry.get("contract_size"), 1.0)
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
            kind=kind,
            contract_size=contract,
            quote_currency="USD",
            settlement_currency="USD" if kind is not InstrumentKind.INVERSE else settlement,
            venue=venue,
            maker_fee_bps=maker,
            taker_fee_bps=taker,
        )
    step = o.tick_size if o.tick_size is not None else entry.get("tick_size")
    size_step = o.lot_size if o.lot_size is not None else entry.get("lot_size")
    if step is None or size_step is None:
        raise ConfigError(
            f"unknown symbol {symbol!r} on {venue}: pass --tick-size, --lot-size and "
            "--min-notional (or set them under [instrument] in the config)"
            + (
                "; an inverse contract also needs its --contract-size in USD"
                if kind is InstrumentKind.INVERSE
                else ""
            )
        )
    return Instrument(
        symbol=symbol.upper(),
        tick_size=float(step),
        lot_size=float(size_step),
        min_notional=_pick(o.min_notional, entry.get("min_notional"), 0.0),
        kind=kind,
        contract_size=contract,
        quote_currency=quote,
        settlement_currency=settlement,
        venue=venue,
        maker_fee_bps=maker,
        taker_fee_bps=taker,
    )


def _pick(*values: float | None) -> float:
    return float(next(v for v in values if v is not None))


def _pick_opt(*values: float | None) -> float | None:
    return next((float(v) for v in values if v is not None), None)
