"""The backtest summary's quoting, two-sided and spread figures are what the simulated venue held.

An independent measurement: every change of the exchange's own book of our resting orders is
recorded with the venue's clock (a dict that logs each mutation and scans itself by brute
force), and the time-weighted sums over the run are compared with the summary."""

import pytest

from market_maker.backtest.runner import run_backtest
from market_maker.backtest.scenarios import engine_config, scenario
from market_maker.config import AppConfig, with_strategy
from market_maker.engine import QuoteEngine
from market_maker.model import Side
from market_maker.venues.exchange import ExchangeCore
from market_maker.venues.resting import RestingMeter
from market_maker.venues.sim import simulated_exchange


class LoggedOrders(dict):  # type: ignore[type-arg]
    """The exchange's resting orders, logging ``(t_ns, best bid ticks, best ask ticks)`` (0:
    none) after every change, read by scanning every order."""

    def __init__(self, exchange: ExchangeCore) -> None:
        super().__init__()
        self.exchange = exchange
        self.log: list[tuple[int, int, int]] = []

    def _logged(self) -> None:
        bids = [o.price_ticks for o in self.values() if o.side is Side.BUY]
        asks = [o.price_ticks for o in self.values() if o.side is Side.SELL]
        self.log.append((self.exchange.now_ns, max(bids, default=0), min(asks, default=0)))

    def __setitem__(self, key, value):  # type: ignore[no-untyped-def]
        super().__setitem__(key, value)
        self._logged()

    def __delitem__(self, key):  # type: ignore[no-untyped-def]
        super().__delitem__(key)
        self._logged()

    def pop(self, key, *default):  # type: ignore[no-untyped-def]
        n = len(self)
        out = super().pop(key, *default)
        if len(self) != n:
            self._logged()
        return out


def brute_force(log: list[tuple[int, int, int]], start: int, end: int) -> dict[str, float]:
    """Seconds with any / both / bid-only / ask-only resting in [start, end], and the mean
    spread over both-sided time (bps of our quotes' midpoint)."""
    out = {"any": 0.0, "both": 0.0, "bid": 0.0, "ask": 0.0, "spread": 0.0}
    for (t, bid, ask), (t_next, _, _) in zip(log, [*log[1:], (end, 0, 0)], strict=True):
        lo, hi = max(t, start), min(t_next, end)
        if hi <= lo:
            continue
        dt = (hi - lo) / 1e9
        if bid or ask:
            out["any"] += dt
        if bid and ask:
            out["both"] += dt
            out["spread"] += (ask - bid) / (0.5 * (ask + bid)) * 1e4 * dt
        elif bid:
            out["bid"] += dt
        elif ask:
            out["ask"] += dt
    return out


@pytest.mark.parametrize("strategy", ["glft", "ladder"])
def test_two_sided_share_in_the_summary_is_measured_at_the_venue(strategy):
    params = scenario("calm", duration_s=60.0)
    config = engine_config(params, with_strategy(AppConfig(), strategy))
    exchange = simulated_exchange(params, 3, request_expiry_s=config.orders.request_expiry_s)
    logged = exchange._orders = LoggedOrders(exchange)
    engine = QuoteEngine(config, params.instrument)
    result, rec = run_backtest(
        exchange,
        engine,
        source="calm",
        seed=3,
        end_ns=int(params.duration_s * 1e9),
        record=True,
    )
    start = result.start_ns
    end = start + round(result.duration_s * 1e9)
    truth = brute_force(logged.log, start, end)
    assert truth["both"] > 1.0  # something to measure, and not everything
    assert result.time_two_sided_s == pytest.approx(truth["both"], abs=1e-6)
    assert result.time_quoting_s == pytest.approx(truth["any"], abs=1e-6)
    assert result.time_bid_only_s == pytest.approx(truth["bid"], abs=1e-6)
    assert result.time_ask_only_s == pytest.approx(truth["ask"], abs=1e-6)
    assert result.mean_quoted_spread_bps == pytest.approx(truth["spread"] / truth["both"])
    # The engine wanted both sides far more than the venue held them (the finding):
    # the wanted figure is reported beside the venue's, never in its place.
    assert result.time_wanted_two_sided_s >= result.time_two_sided_s
    # The recording's best-quote steps are the venue's, as they changed.
    assert rec is not None and rec.quote_changes
    tick = params.instrument.tick_size
    changes = [
        (t, b * tick if b else None, a * tick if a else None)
        for t, b, a in _dedup(logged.log)
        if start <= t <= end
    ]
    recorded = _dedup([(round(t * 1e9) + start, b, a) for t, b, a in rec.quote_changes])
    assert recorded == [
        (t, pytest.approx(b) if b else b, pytest.approx(a) if a else a) for t, b, a in changes
    ]


def _dedup(log: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """The states that lasted: the last of each instant, when it differs from the one before
    (a modify leaves the book and rests again at one instant)."""
    at: dict[int, tuple[int, int]] = {}
    for t, b, a in log:
        at[t] = (b, a)
    out: list[tuple[int, int, int]] = []
    last = (0, 0)
    for t, state in at.items():
        if state != last:
            out.append((t, *state))
            last = state
    return out


def test_the_meter_reads_totals_before_its_last_changes():
    meter = RestingMeter(0.1)
    meter.update(10, 1000, 0)  # a bid from t=10
    meter.update(20, 1000, 1002)  # both from t=20
    meter.update(40, 0, 1002)  # ask only from t=40
    at_30 = meter.totals(30)
    assert (at_30.any_ns, at_30.both_ns, at_30.bid_only_ns, at_30.ask_only_ns) == (20, 10, 10, 0)
    at_50 = meter.totals(50)
    assert (at_50.any_ns, at_50.both_ns, at_50.bid_only_ns, at_50.ask_only_ns) == (40, 20, 10, 10)
    assert at_50.mean_spread_bps == pytest.approx(2 / 1001 * 1e4)
    assert meter.totals(5).any_ns == 0
