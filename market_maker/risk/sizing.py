"""Exact exchange sizing: float prices and sizes become integer ticks and lots once, here.

Bids round down and asks round up (never towards the other side), sizes round down, post-only
quotes are clamped behind the touch, and orders under the minimum notional are dropped. Wire
strings are formatted from the integers, never from rounded floats.

``DynamicSizer`` scales a quote budget by a conviction score and delegates every exchange check
to ``PositionSizer``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from decimal import Decimal

from market_maker.config import ConvictionConfig
from market_maker.model import Instrument, Quote, Side

__all__ = ["DynamicSizer", "PositionSizer"]

# Enum members as module constants: attribute access on an Enum class is slow in 3.11.
_BUY = Side.BUY

# Relative slack for float -> integer conversion: a price that is on the grid up to float noise
# (100.3 / 0.1 = 1002.9999999999999) must not lose a tick. 1e-12 is far above double rounding
# error (~1e-16) and far below one tick for any price under 1e11 ticks.
_REL_EPS = 1e-12
_ABS_EPS = 1e-9
_POW10: list[int] = [10**i for i in range(40)]
_MAX_UNITS = 1e15  # ticks or lots beyond this are not a market: refuse them before converting


def _decimals(step: float) -> int:
    """Decimal places needed to write multiples of ``step`` exactly (0.1 -> 1, 0.25 -> 2)."""
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


class PositionSizer:
    """Converts between float prices/sizes and integer ticks/lots for one instrument."""

    __slots__ = (
        "_contract",
        "_inverse",
        "_lot_dec",
        "_lot_units",
        "_tick_dec",
        "_tick_units",
        "instrument",
        "lot_size",
        "max_sig_figs",
        "min_notional",
        "tick_size",
    )

    def __init__(self, instrument: Instrument) -> None:
        if not (math.isfinite(instrument.tick_size) and instrument.tick_size > 0.0):
            raise ValueError("tick_size must be positive")
        if not (math.isfinite(instrument.lot_size) and instrument.lot_size > 0.0):
            raise ValueError("lot_size must be positive")
        self.instrument = instrument
        tick = instrument.tick_size
        if instrument.max_price_decimals is not None:
            tick = max(tick, 10.0**-instrument.max_price_decimals)
        self.tick_size = tick
        self.lot_size = instrument.lot_size
        self.min_notional = instrument.min_notional
        # An order's USD value is price * size * contract_size (linear, spot), or
        # size * contract_size for an inverse contract (whatever the price): the minimum
        # notional is checked on it.
        self._contract = instrument.contract_size
        self._inverse = instrument.inverse
        self.max_sig_figs = instrument.max_sig_figs
        self._tick_dec = _decimals(tick)
        self._tick_units = round(Decimal(repr(tick)) * _POW10[self._tick_dec])
        self._lot_dec = _decimals(instrument.lot_size)
        self._lot_units = round(Decimal(repr(instrument.lot_size)) * _POW10[self._lot_dec])
        if self.max_sig_figs is not None and self._tick_units != 1:
            raise ValueError("max_sig_figs needs a tick size that is a power of ten")

    # ----- prices -------------------------------------------------------------------------

    def price_ticks(self, price: float, side: Side) -> int:
        """Ticks for a wanted price: bids round down, asks round up (then the sig-fig rule)."""
        x = price / self.tick_size
        if side is _BUY:
            ticks = math.floor(x + x * _REL_EPS + _ABS_EPS)
        else:
            ticks = math.ceil(x - x * _REL_EPS - _ABS_EPS)
        if self.max_sig_figs is not None:
            ticks = self._apply_sig_figs(ticks, side)
        return ticks

    def price_ok(self, price: float) -> bool:
        """Finite, positive and within ``1e15`` ticks: a price the integer grid can hold."""
        return 0.0 < price < self.tick_size * _MAX_UNITS  # False for NaN and inf

    def size_ok(self, size: float) -> bool:
        """Finite, positive and within ``1e15`` lots."""
        return 0.0 < size < self.lot_size * _MAX_UNITS

    def position_ok(self, position: float) -> bool:
        """Finite and within ``1e15`` lots either way: a position the lot count can hold."""
        return abs(position) < self.lot_size * _MAX_UNITS  # False for NaN and inf

    def nearest_ticks(self, price: float) -> int:
        """Ticks for a price already on the grid (book levels, fills): the nearest integer.
        A price no grid can hold (``price_ok`` false, or negative) gives 0."""
        x = price / self.tick_size
        if not -_MAX_UNITS < x < _MAX_UNITS:
            return 0
        return math.floor(x + 0.5)

    def _apply_sig_figs(self, ticks: int, side: Side) -> int:
        """Coarsen to ``max_sig_figs`` significant figures; whole-unit prices are always valid."""
        sig_figs = self.max_sig_figs
        if ticks <= 0 or sig_figs is None:
            return ticks
        excess = bisect_right(_POW10, ticks) - sig_figs  # decimal digits of ticks - allowed
        if excess <= 0:
            return ticks
        step: int = min(_POW10[excess], _POW10[self._tick_dec])  # integer prices always valid
        if side is _BUY:
            return ticks - ticks % step
        return -((-ticks) // step) * step

    def taking_ticks(self, side: Side, ticks: int) -> int:
        """The limit of an order that takes liquidity (immediate-or-cancel), on the venue's
        price grid and never less aggressive than ``ticks``: a buy's rounds up, a sell's down
        (Hyperliquid's 5 significant figures apply to every price, not only to quotes)."""
        if self.max_sig_figs is None or ticks <= 0:
            return ticks
        return self._apply_sig_figs(ticks, Side.SELL if side is _BUY else _BUY)

    def ticks_to_price(self, ticks: int) -> float:
        """The float nearest to the exact price (one rounding: 99977.4, not 99977.40000000001)."""
        return ticks * self._tick_units / _POW10[self._tick_dec]

    def format_price(self, ticks: int) -> str:
        """Wire string for ``ticks``, exact, from integers."""
        return _format_units(ticks * self._tick_units, self._tick_dec)

    def exact_price(self, price: float) -> float:
        """A price on the grid as the float nearest its exact tick, for logs and reports
        (2682.45, not 2682.4500000000003)."""
        return self.ticks_to_price(self.nearest_ticks(price))

    def exact_mid(self, mid: float) -> float:
        """A mid (on the grid or half way between two ticks) the same way."""
        half_ticks = math.floor(2.0 * mid / self.tick_size + 0.5)
        return half_ticks * self._tick_units / (2 * _POW10[self._tick_dec])

    def format_mid(self, mid: float) -> str:
        """A mid's exact decimal string (half ticks need one more decimal)."""
        half_ticks = math.floor(2.0 * mid / self.tick_size + 0.5)
        return _format_units(half_ticks * self._tick_units * 5, self._tick_dec + 1)

    # ----- sizes --------------------------------------------------------------------------

    def size_lots(self, size: float) -> int:
        """Lots for a wanted size, rounded down (never more than asked)."""
        x = size / self.lot_size
        if not x > 0.0 or x == math.inf:
            return 0
        return math.floor(x + x * _REL_EPS + _ABS_EPS)

    def nearest_lots(self, size: float) -> int:
        """Lots for a size already on the grid (fills, positions); 0 beyond ``1e15`` lots or
        for NaN (callers check ``size_ok`` or finiteness where it matters)."""
        x = size / self.lot_size
        if not -_MAX_UNITS < x < _MAX_UNITS:
            return 0
        return math.floor(x + 0.5)

    def lots_to_size(self, lots: int) -> float:
        return lots * self._lot_units / _POW10[self._lot_dec]

    def format_size(self, lots: int) -> str:
        return _format_units(lots * self._lot_units, self._lot_dec)

    def exact_size(self, size: float) -> float:
        """A size (or position) on the lot grid as the float nearest its exact lots."""
        return self.lots_to_size(self.nearest_lots(size))

    def min_lots(self, price_ticks: int) -> int:
        """Smallest order (lots, at least 1) whose notional reaches ``min_notional`` at a price."""
        if self.min_notional <= 0.0 or price_ticks <= 0:
            return 1
        notional_per_lot = self.lot_size * self._contract
        if not self._inverse:
            notional_per_lot *= price_ticks * self.tick_size
        if not notional_per_lot > 0.0:
            return 1
        return max(1, math.ceil(self.min_notional / notional_per_lot - _ABS_EPS))

    # ----- quotes -------------------------------------------------------------------------

    def quote(
        self, side: Side, price: float, size: float, best_bid: int, best_ask: int
    ) -> tuple[int, int] | None:
        """Exchange-valid ``(price_ticks, size_lots)`` for a post-only quote, or None to drop it."""
        exact = self.exact_quotes(side, (Quote(price, size),), best_bid, best_ask)
        return exact[0] if exact else None

    def exact_quotes(
        self, side: Side, quotes: Sequence[Quote], best_bid: int, best_ask: int
    ) -> tuple[tuple[int, int], ...]:
        """Exact ``(ticks, lots)`` for a side's levels (best first) in one pass: ``price_ticks``,
        then the post-only clamp behind the touch (a bid at most the best bid, an ask at least
        the best ask), sizes rounded down, levels under the minimum notional dropped, levels that
        the clamp stacked on one price merged. The rounding is ``price_ticks`` inlined: this
        runs every quote cycle."""
        out: list[tuple[int, int]] = []
        tick = self.tick_size
        lot = self.lot_size
        sig = self.max_sig_figs
        is_bid = side is _BUY
        floor = math.floor
        ceil = math.ceil
        min_notional = self.min_notional
        inverse = self._inverse
        contract = self._contract
        last = -1
        for q in quotes:
            price = q.price
            if not (price > 0.0 and price < math.inf):
                continue
            x = price / tick
            if is_bid:
                ticks = floor(x + x * _REL_EPS + _ABS_EPS)
            else:
                ticks = ceil(x - x * _REL_EPS - _ABS_EPS)
            if sig is not None:
                ticks = self._apply_sig_figs(ticks, side)
            if is_bid:
                if ticks > best_bid:
                    ticks = best_bid
            elif ticks < best_ask:
                ticks = best_ask
            if ticks <= 0:
                continue
            y = q.size / lot
            if not (y >= 1.0 and y < math.inf):
                continue
            lots = floor(y + y * _REL_EPS + _ABS_EPS)
            if min_notional > 0.0 and (
                lots * lot * contract if inverse else ticks * tick * lots * lot * contract
            ) < min_notional * (1.0 - 1e-12):
                continue
            if ticks == last:
                out[-1] = (ticks, out[-1][1] + lots)
            else:
                out.append((ticks, lots))
                last = ticks
        return tuple(out)

    def exact_levels(
        self, side: Side, ticks: Sequence[int], size: float, best_bid: int, best_ask: int
    ) -> tuple[tuple[int, int], ...]:
        """``exact_quotes`` for levels already on this sizer's tick grid, all of one ``size``
        (a ladder side): the same sig-fig rule, post-only clamp, size rounding, minimum
        notional and merging, without a float price per level. Ticks must be positive."""
        lot = self.lot_size
        y = size / lot
        if not (y >= 1.0 and y < math.inf):
            return ()
        lots = math.floor(y + y * _REL_EPS + _ABS_EPS)
        out: list[tuple[int, int]] = []
        tick = self.tick_size
        sig = self.max_sig_figs
        is_bid = side is _BUY
        min_notional = self.min_notional
        least = min_notional * (1.0 - 1e-12)
        inverse = self._inverse
        contract = self._contract
        last = -1
        for t in ticks:
            if sig is not None:
                t = self._apply_sig_figs(t, side)
            if is_bid:
                if t > best_bid:
                    t = best_bid
            elif t < best_ask:
                t = best_ask
            if t <= 0:
                continue
            if (
                min_notional > 0.0
                and (lots * lot * contract if inverse else t * tick * lots * lot * contract) < least
            ):
                continue
            if t == last:
                out[-1] = (t, out[-1][1] + lots)
            else:
                out.append((t, lots))
                last = t
        return tuple(out)


def _format_units(units: int, decimals: int) -> str:
    if decimals == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), _POW10[decimals])
    text = f"{sign}{whole}.{frac:0{decimals}d}".rstrip("0")
    return text[:-1] if text.endswith(".") else text


class DynamicSizer:
    """Conviction sizing (the original Python bot's), exchange checks delegated to the sizer.

    ``fraction = min_fraction + (max_fraction - min_fraction) * score`` with ``score`` in [0, 1];
    ``budget = max_position_usd * fraction``, capped by what is left of
    ``max_portfolio_exposure_usd``; no budget (None) once nothing is left.
    """

    __slots__ = ("config", "sizer")

    def __init__(self, config: ConvictionConfig, sizer: PositionSizer) -> None:
        self.config = config
        self.sizer = sizer

    def fraction(self, score: float) -> float:
        s = score if score == score else 0.0  # NaN scores count as no conviction
        s = 0.0 if s < 0.0 else 1.0 if s > 1.0 else s
        cfg = self.config
        return cfg.min_fraction + (cfg.max_fraction - cfg.min_fraction) * s

    def budget_usd(self, score: float, current_exposure_usd: float) -> float | None:
        """USD to commit at this conviction, or None when the portfolio cap is reached."""
        remaining = self.config.max_portfolio_exposure_usd - current_exposure_usd
        if not remaining > 0.0:
            return None
        budget = self.config.max_position_usd * self.fraction(score)
        return budget if budget < remaining else remaining

    def size_lots(self, score: float, price_ticks: int, current_exposure_usd: float) -> int:
        """Lots affordable at ``price_ticks``; 0 when no budget or under the exchange minimum."""
        budget = self.budget_usd(score, current_exposure_usd)
        if budget is None or price_ticks <= 0:
            return 0
        lots = self.sizer.size_lots(budget / self.sizer.ticks_to_price(price_ticks))
        return lots if lots >= self.sizer.min_lots(price_ticks) else 0
