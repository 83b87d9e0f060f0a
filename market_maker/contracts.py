"""What a market's contract means for the engine's configuration (pure, at construction).

- Spot has no leverage: the leverage limit is the account value itself (``max_leverage`` at
  most 1), and the position is bounded by the balances held (``QuoteEngine``: a sell needs the
  base asset, a buy the quote).
- ``strategy.fee_floor_from_fees``: the fee floor is the market's maker fee (a rebate floors
  at 0), the same number the venue charges and the summary counts.
"""

from __future__ import annotations

import msgspec

from market_maker.config import AppConfig
from market_maker.model import Instrument

__all__ = ["contract_config", "with_fee_rates"]


def contract_config(config: AppConfig, instrument: Instrument) -> AppConfig:
    """``config`` as it applies to ``instrument`` (unchanged for a linear perpetual without
    ``fee_floor_from_fees``)."""
    if instrument.spot and config.risk.max_leverage > 1.0:
        risk = msgspec.structs.replace(config.risk, max_leverage=1.0)
        config = msgspec.structs.replace(config, risk=risk)
    strategy = config.strategy
    if strategy.fee_floor_from_fees and instrument.maker_fee_bps is not None:
        floor = max(0.0, instrument.maker_fee_bps)
        config = msgspec.structs.replace(
            config, strategy=msgspec.structs.replace(strategy, min_half_spread_bps=floor)
        )
    return config


def with_fee_rates(instrument: Instrument, maker_bps: float, taker_bps: float) -> Instrument:
    """``instrument`` trading at new fee rates (a tier the venue moved the account to)."""
    return msgspec.structs.replace(instrument, maker_fee_bps=maker_bps, taker_fee_bps=taker_bps)
