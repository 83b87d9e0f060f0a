"""``QuoteEngine.status()``: a typed, frozen ``EngineStatus``; the board shows what rests at the
venue and, when a wanted level does not rest, the level and why."""

import io

import msgspec
import pytest

import market_maker
from market_maker.config import AppConfig, OrdersConfig
from market_maker.engine import QuoteEngine
from market_maker.model import AckStatus, BookUpdate, Instrument, OrderAck, Place, Side
from market_maker.runtime import StatusBoard
from market_maker.status import EngineStatus, NotResting, QuoteLevel

S = 1_000_000_000
INST = Instrument(symbol="BTC", tick_size=0.1, lot_size=0.001, min_notional=10.0)


def book(ts: int, bid: float = 100_000.0) -> BookUpdate:
    return BookUpdate(ts_ns=ts, bids=((bid, 1.0),), asks=((bid + 0.1, 1.0),))


def ack(e: QuoteEngine, place: Place, ts: int) -> None:
    e.on_event(
        OrderAck(
            ts_ns=ts, cloid=place.cloid, status=AckStatus.ACCEPTED, request_id=place.request_id
        )
    )


def board_line(e: QuoteEngine, label: str) -> str:
    lines = StatusBoard(e, io.StringIO(), tty=True).render()
    return next(line for line in lines if line.lstrip("│ ").startswith(label + " "))


def test_status_is_a_frozen_struct_read_by_attribute():
    e = QuoteEngine(AppConfig(), INST)
    e.on_event(book(1 * S))
    s = e.status()
    assert isinstance(s, EngineStatus)
    assert market_maker.EngineStatus is EngineStatus and "EngineStatus" in market_maker.__all__
    with pytest.raises(AttributeError):
        s.position = 1.0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        s.bids.pending = 1.0  # type: ignore[misc]
    assert s.trading_state == "active" and s.market.mid == pytest.approx(100_000.05)
    assert isinstance(s.bids.wanted[0], QuoteLevel) and s.asks.wanted
    # Nothing answered yet: nothing rests, and the places are on their way.
    assert s.bids.resting == () and s.asks.resting == ()
    assert s.bids.not_resting == s.asks.not_resting == NotResting.IN_FLIGHT
    # A copy: the engine counting on does not change a status already taken.
    events = s.counters.events
    e.on_event(book(2 * S))
    assert s.counters.events == events and e.status().counters.events == events + 1
    assert s.counter_dict()["events"] == events and "fills" in s.counter_dict()
    msgspec.json.encode(s)  # serialisable as it is (logs)


def test_board_shows_the_ask_wanted_and_not_resting_while_its_place_is_unanswered():
    e = QuoteEngine(AppConfig(), INST)
    places = [a for a in e.on_event(book(1 * S)) if isinstance(a, Place)]
    bid = next(p for p in places if p.side is Side.BUY)
    ask = next(p for p in places if p.side is Side.SELL)
    ack(e, bid, 1 * S)  # the venue answered the bid's place only
    s = e.status()
    assert [o.price for o in s.bids.resting] == [bid.price] and s.bids.not_resting == ""
    assert s.asks.resting == () and s.asks.not_resting == NotResting.IN_FLIGHT
    assert not s.two_sided
    assert f"{bid.size:.4f} @ {bid.price:,.2f}  (1 resting, 1 wanted)" in board_line(e, "bid")
    line = board_line(e, "ask")
    assert f"wanted {ask.size:.4f} @ {ask.price:,.2f}, not resting: in flight" in line
    ack(e, ask, 1 * S)
    assert e.status().two_sided and "not resting" not in board_line(e, "ask")


def test_board_shows_budget_when_the_request_budget_cut_the_plan():
    # One request of budget: one side is placed, the other waits for a token.
    cfg = AppConfig(orders=OrdersConfig(max_requests_per_s=0.01, request_burst=1.0))
    e = QuoteEngine(cfg, INST)
    places = [a for a in e.on_event(book(1 * S)) if isinstance(a, Place)]
    assert len(places) == 1
    sent = places[0]
    ack(e, sent, 1 * S)
    e.on_event(book(2 * S, bid=100_000.5))  # the budget is empty: the cycle is held
    s = e.status()
    placed, missing = (s.bids, s.asks) if sent.side is Side.BUY else (s.asks, s.bids)
    assert placed.resting and not missing.resting and missing.wanted
    assert missing.not_resting == NotResting.BUDGET
    level = missing.wanted[0]
    label = "ask" if sent.side is Side.BUY else "bid"
    expected = f"wanted {level.size:.4f} @ {level.price:,.2f}, not resting: budget"
    assert expected in board_line(e, label)


def test_a_halted_engine_shows_its_cancelled_orders_leaving_and_not_wanted():
    e = QuoteEngine(AppConfig(), INST)
    places = [a for a in e.on_event(book(1 * S)) if isinstance(a, Place)]
    for p in places:
        ack(e, p, 1 * S)
    e.halt("test")
    e.on_event(book(2 * S))
    s = e.status()
    assert s.trading_state == "halted" and s.bids.wanted == () and s.asks.wanted == ()
    assert all(o.leaving for o in s.bids.resting + s.asks.resting)  # cancels on their way
    assert s.bids.not_resting == ""  # nothing is wanted
    assert "not wanted" in board_line(e, "bid")
