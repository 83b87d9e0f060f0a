"""Fee schedules: the maker and taker rate an account pays on a market, tiers and rebates.

Rates are basis points of an order's USD value; negative is a rebate. A venue's schedule is a
list of volume tiers (rolling 14-day volume, USD) and, on Hyperliquid, maker rebates by the
account's share of the venue's 14-day maker volume. Facts (``reference/hyperliquid-verified.md``
section 7, trading/fees): perps base taker 0.045 %, maker 0.015 %; above 5M 0.040 / 0.012, above
25M 0.035 / 0.008, above 100M 0.030 / 0.004, above 500M 0.028 / 0.000; maker rebates above
0.5 % of maker volume -0.001 %, above 1.5 % -0.002 %, above 3 % -0.003 %. The live rates are
the venue's ``userFees`` answer (``userAddRate`` maker, ``userCrossRate`` taker, fractions),
which replace any schedule. Binance's VIP 0 rates are in the instruments table.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import msgspec

from market_maker.config import FeesConfig, FeeTierConfig, RebateTierConfig
from market_maker.errors import ConfigError
from market_maker.model import Instrument

__all__ = [
    "HYPERLIQUID_PERP_REBATES",
    "HYPERLIQUID_PERP_TIERS",
    "FeeRates",
    "apply_fees",
    "rates_from_schedule",
    "rates_from_user_fees",
]


class FeeRates(msgspec.Struct, frozen=True, kw_only=True):
    """The rates an account pays, and where they came from."""

    maker_bps: float
    taker_bps: float
    source: str
    """table, config, schedule (with the tier), userFees."""


HYPERLIQUID_PERP_TIERS: tuple[FeeTierConfig, ...] = (
    FeeTierConfig(min_volume_usd=0.0, maker_bps=1.5, taker_bps=4.5),
    FeeTierConfig(min_volume_usd=5e6, maker_bps=1.2, taker_bps=4.0),
    FeeTierConfig(min_volume_usd=25e6, maker_bps=0.8, taker_bps=3.5),
    FeeTierConfig(min_volume_usd=100e6, maker_bps=0.4, taker_bps=3.0),
    FeeTierConfig(min_volume_usd=500e6, maker_bps=0.0, taker_bps=2.8),
)
HYPERLIQUID_PERP_REBATES: tuple[RebateTierConfig, ...] = (
    RebateTierConfig(min_maker_share_pct=0.5, maker_bps=-0.1),
    RebateTierConfig(min_maker_share_pct=1.5, maker_bps=-0.2),
    RebateTierConfig(min_maker_share_pct=3.0, maker_bps=-0.3),
)
_SCHEDULES = {"hyperliquid": (HYPERLIQUID_PERP_TIERS, HYPERLIQUID_PERP_REBATES)}


def rates_from_schedule(
    tiers: tuple[FeeTierConfig, ...],
    rebates: tuple[RebateTierConfig, ...],
    *,
    volume_14d_usd: float,
    maker_share_pct: float = 0.0,
) -> FeeRates:
    """The tier ``volume_14d_usd`` reaches (``volume > min``, the venue's "above"; the first
    tier always applies), and the maker rebate ``maker_share_pct`` earns when it beats the
    tier's maker rate."""
    ordered = sorted(tiers, key=lambda t: t.min_volume_usd)
    tier = ordered[0]
    for t in ordered[1:]:
        if volume_14d_usd > t.min_volume_usd:
            tier = t
    maker = tier.maker_bps
    label = f"schedule: 14-day volume {volume_14d_usd:,.0f} USD"
    for r in sorted(rebates, key=lambda r: r.min_maker_share_pct):
        if maker_share_pct > r.min_maker_share_pct and r.maker_bps < maker:
            maker = r.maker_bps
            label = f"{label}, maker share {maker_share_pct:g} %"
    return FeeRates(maker_bps=maker, taker_bps=tier.taker_bps, source=label)


def rates_from_user_fees(add_rate: str | float, cross_rate: str | float) -> FeeRates:
    """Hyperliquid ``userFees``: ``userAddRate`` (maker) and ``userCrossRate`` (taker) are
    fractions of notional ("0.00015" is 1.5 bp; a negative add rate is a rebate)."""
    try:
        maker = Decimal(str(add_rate)) * 10_000  # exact: "0.00015" is 1.5 bp, not 1.4999...
        taker = Decimal(str(cross_rate)) * 10_000
    except InvalidOperation:
        raise ValueError(f"userFees rates {add_rate!r} / {cross_rate!r}") from None
    if not (maker.is_finite() and taker.is_finite()):
        raise ValueError(f"userFees rates {add_rate!r} / {cross_rate!r}")
    return FeeRates(maker_bps=float(maker), taker_bps=float(taker), source="userFees")


def apply_fees(
    instrument: Instrument,
    fees: FeesConfig,
    *,
    live: FeeRates | None = None,
    default_maker_bps: float = 1.5,
    default_taker_bps: float = 4.5,
) -> tuple[Instrument, FeeRates]:
    """``instrument`` carrying the rates it trades at, and where they came from: the venue's
    live answer, else ``[fees]`` rates, else the tier ``[fees]`` names on the venue's (or the
    given) schedule, else the instrument's own (table or ``[instrument]``), else the
    defaults."""
    if live is not None:
        rates = live
    elif fees.maker_bps is not None or fees.taker_bps is not None:
        rates = FeeRates(
            maker_bps=_first(fees.maker_bps, instrument.maker_fee_bps, default_maker_bps),
            taker_bps=_first(fees.taker_bps, instrument.taker_fee_bps, default_taker_bps),
            source="config",
        )
    elif fees.volume_14d_usd is not None or fees.tiers is not None:
        tiers, rebates = _SCHEDULES.get(instrument.venue, ((), ()))
        tiers = fees.tiers or tiers
        if not tiers:
            venue = instrument.venue or "this venue"
            raise ConfigError(
                f"[fees] volume_14d_usd: no fee schedule is known for {venue}: "
                "set [fees] tiers, or maker_bps and taker_bps"
            )
        rates = rates_from_schedule(
            tiers,
            fees.rebates if fees.rebates is not None else rebates,
            volume_14d_usd=fees.volume_14d_usd or 0.0,
            maker_share_pct=fees.maker_share_pct or 0.0,
        )
    else:
        rates = FeeRates(
            maker_bps=_first(instrument.maker_fee_bps, default_maker_bps),
            taker_bps=_first(instrument.taker_fee_bps, default_taker_bps),
            source="table" if instrument.maker_fee_bps is not None else "default",
        )
    out = msgspec.structs.replace(
        instrument, maker_fee_bps=rates.maker_bps, taker_fee_bps=rates.taker_bps
    )
    return out, rates


def _first(*values: float | None) -> float:
    return next(v for v in values if v is not None)
