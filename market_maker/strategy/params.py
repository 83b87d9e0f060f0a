"""Market parameters: one frozen snapshot per quote cycle, built from estimators and risk.

Strategies read only this snapshot (plus their own config), never shared state, so they are pure
functions of their inputs.
"""

from __future__ import annotations

import math

import msgspec

from market_maker.config import AppConfig
from market_maker.model import Instrument
from market_maker.risk.kill_switch import TradingState
from market_maker.risk.limits import BindingLimit, dynamic_max_position, effective_max_position

__all__ = ["MarketParams", "ParameterAggregator"]


class MarketParams(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a strategy may use, in one cycle. Prices USD, sizes contracts. Keywords only:
    twenty numbers in a row are too easy to swap."""

    ts_ns: int
    mid: float
    best_bid: float
    best_ask: float
    tick_size: float
    lot_size: float
    sigma: float
    """Volatility used for quoting and limits, fraction of price per sqrt second."""
    sigma_ticks: float
    """The same in ticks per sqrt second (``sigma * mid / tick``)."""
    a: float
    """Fill intensity at zero depth, per second per side."""
    k: float
    """Decay of fill intensity with depth, per tick."""
    hawkes_ratio: float
    flow_imbalance: float
    """``(buy - sell) / (buy + sell)`` Hawkes intensities of aggressor flow, in [-1, 1]."""
    position: float
    pending_bids: float
    """Bid exposure the next quote set cannot reuse (orders with a cancel in flight)."""
    pending_asks: float
    dynamic_max_position: float
    max_position_cap: float | None
    max_position_value: float | None
    binding_limit: BindingLimit
    trading_state: TradingState
    order_size: float
    """One quote this cycle, contracts (``order_size_usd / mid`` when sizing in USD)."""
    target_liquidity: float
    """The ladder's total per side this cycle, contracts."""
    fair_shift: float = 0.0
    """Fair value minus mid, USD (``[quoting] fair_value``): the quotes centre on
    ``mid + fair_shift``."""
    floor_bps: float = 0.0
    """No quote closer to the fair value than this, bps (``[quoting] adverse_floor``: the
    adverse move expected after a fill plus the maker fee); 0: off."""
    toxic: int = 0
    """+1: the flow is one-sided buying (our asks are run over), -1: selling, 0: neither."""
    toxic_widen_bps: float = 0.0
    """How much further out the side the toxic flow runs towards steps, bps."""
    funding_shift: float = 0.0
    """The reservation price's lean towards holding the side that receives funding, USD
    (``[funding] skew``; negative when longs pay): the quotes centre on ``mid + fair_shift +
    funding_shift``."""

    @property
    def fair(self) -> float:
        """The price the quotes centre on."""
        return self.mid + self.fair_shift + self.funding_shift

    def effective_max_position(self) -> float:
        """The limit in contracts under the optional hard cap."""
        return effective_max_position(self.dynamic_max_position, self.max_position_cap)

    def utilisation(self) -> float:
        """``|q| / Q`` (infinite when the limit is zero and a position is held)."""
        limit = self.effective_max_position()
        if limit > 0.0:
            return abs(self.position) / limit
        return 0.0 if self.position == 0.0 else math.inf


class ParameterAggregator:
    """Builds ``MarketParams`` from the cycle's inputs; re-derives the limit every cycle."""

    __slots__ = ("_cap", "_lot", "_size", "_size_usd", "_static", "_target", "_target_usd", "_tick")

    def __init__(self, config: AppConfig, instrument: Instrument) -> None:
        self._static = config.risk.max_position
        self._cap = config.risk.max_position_cap
        self._tick = instrument.tick_size
        self._lot = instrument.lot_size
        self._size = config.strategy.order_size
        self._size_usd = config.strategy.order_size_usd
        self._target = config.ladder.target_liquidity
        self._target_usd = config.ladder.target_liquidity_usd

    def build(
        self,
        *,
        ts_ns: int,
        best_bid: float,
        best_ask: float,
        sigma: float,
        a: float,
        k: float,
        hawkes_ratio: float,
        buy_intensity: float,
        sell_intensity: float,
        position: float,
        pending_bids: float,
        pending_asks: float,
        max_position_value: float | None,
        binding_limit: BindingLimit,
        trading_state: TradingState,
        fair_shift_ticks: int = 0,
        floor_bps: float = 0.0,
        toxic: int = 0,
        toxic_widen_bps: float = 0.0,
        unit_value: float | None = None,
        funding_skew: float = 0.0,
    ) -> MarketParams:
        """``unit_value``: USD value of one contract (``Instrument.unit_value``); default the
        mid (a linear contract of one base unit). ``funding_skew``: the funding lean of the
        reservation price as a fraction of the mid (``risk.carry.funding_skew_fraction``)."""
        mid = 0.5 * (best_bid + best_ask)
        unit = mid if unit_value is None else unit_value
        flow = buy_intensity + sell_intensity
        imbalance = (buy_intensity - sell_intensity) / flow if flow > 0.0 else 0.0
        size = self._size
        target = self._target
        if unit > 0.0:  # False for NaN too
            if self._size_usd is not None:
                size = self._size_usd / unit
            if self._target_usd is not None:
                target = self._target_usd / unit
        return MarketParams(
            ts_ns=ts_ns,
            mid=mid,
            best_bid=best_bid,
            best_ask=best_ask,
            tick_size=self._tick,
            lot_size=self._lot,
            sigma=sigma,
            sigma_ticks=sigma * mid / self._tick,
            a=a,
            k=k,
            hawkes_ratio=hawkes_ratio,
            flow_imbalance=imbalance,
            position=position,
            pending_bids=pending_bids,
            pending_asks=pending_asks,
            dynamic_max_position=dynamic_max_position(max_position_value, unit, self._static),
            max_position_cap=self._cap,
            max_position_value=max_position_value,
            binding_limit=binding_limit,
            trading_state=trading_state,
            order_size=size,
            target_liquidity=target,
            fair_shift=fair_shift_ticks * self._tick,
            floor_bps=floor_bps,
            toxic=toxic,
            toxic_widen_bps=toxic_widen_bps,
            funding_shift=funding_skew * mid,
        )
