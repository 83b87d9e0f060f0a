"""Reducing that converges: escalations that never flip, reducing quotes that rest, a halt that
takes the excess back, and taking prices on the venue's grid.

The venue here is a ledger kept by the test (its own position and what could still trade),
never the engine's counts: every check compares the engine's orders with that ledger.
"""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings, target
from hypothesis import strategies as st

from market_maker.config import (
    AppConfig,
    DynamicRiskConfig,
    KillSwitchConfig,
    OrdersConfig,
    StrategyConfig,
)
from market_maker.engine import QuoteEngine
from market_maker.model import (
    AckStatus,
    BookUpdate,
    Cancel,
    Fill,
    Instrument,
    Modify,
    OpenOrder,
    OrderAck,
    Place,
    RequestSnapshot,
    Side,
    Timer,
    VenueSnapshot,
)

S = 1_000_000_000
LOT = 0.001
INST = Instrument(symbol="BTC", tick_size=0.1, lot_size=LOT, min_notional=10.0)


def book(ts: int, bid: float = 100_000.0) -> BookUpdate:
    return BookUpdate(ts_ns=ts, bids=((bid, 1.0),), asks=((bid + 0.1, 1.0),))


class Ledger:
    """The venue's truth: our position and every order that could still trade (in lots).

    Requests wait in ``requests`` until the test lets them arrive (an order with a cancel on
    its way can still trade); answers wait in ``unanswered`` until the test delivers them, so
    the engine sees orders on their way both ways. An IOC trades what the test says,
    within the request deadline (``request_expiry_s``); past it the venue refuses it as
    expired, as Hyperliquid does with ``expiresAfter``."""

    def __init__(self, position: int) -> None:
        self.position = position
        self.live: dict[str, list] = {}  # cloid -> [side, lots left]
        self.requests: list = []  # sent, not yet at the venue
        self.unanswered: list[OrderAck] = []
        self.iocs: list[Place] = []  # sent, not yet traded
        self.sent: dict[str, int] = {}
        self.prices: dict[str, float] = {}
        self.filled: dict[str, int] = {}
        self.fill_id = 0

    def expire(self, ts: int, expiry_s: float = OrdersConfig().request_expiry_s) -> None:
        """Requests past their deadline, and IOCs not traded by then, are refused."""
        late = expiry_s * S
        expired = [p for p in self.iocs if ts - self.sent[p.cloid] > late]
        expired += [a for t, a in self.requests if ts - t > late]
        self.iocs = [p for p in self.iocs if p not in expired]
        self.requests = [(t, a) for t, a in self.requests if ts - t <= late]
        for a in expired:
            self.unanswered.append(
                OrderAck(
                    ts_ns=ts,
                    cloid=a.cloid,
                    status=AckStatus.REJECTED,
                    request_id=a.request_id,
                    reason="Action already expired",
                )
            )

    def send(self, actions, ts: int) -> None:
        for a in actions:
            if isinstance(a, Place):
                self.sent[a.cloid] = ts
        self.requests.extend((ts, a) for a in actions)

    def arrive_all(self) -> None:
        if self.requests:
            self.arrive(len(self.requests) - 1, 0)

    def arrive(self, n: int, ts: int) -> None:
        """The oldest ``1 + n % len`` requests reach the venue, in the order sent."""
        k = 1 + n % len(self.requests)
        arrived, self.requests = self.requests[:k], self.requests[k:]
        for _, a in arrived:
            if isinstance(a, Place) and not a.post_only:
                self.iocs.append(a)
            elif isinstance(a, Place):
                self.live[a.cloid] = [a.side, round(a.size / LOT)]
                self.prices[a.cloid] = a.price
                self.unanswered.append(
                    OrderAck(
                        ts_ns=ts, cloid=a.cloid, status=AckStatus.ACCEPTED, request_id=a.request_id
                    )
                )
            elif isinstance(a, Cancel):
                gone = self.live.pop(a.cloid, None)
                status = AckStatus.CANCELED if gone else AckStatus.NOT_FOUND
                self.unanswered.append(
                    OrderAck(ts_ns=ts, cloid=a.cloid, status=status, request_id=a.request_id)
                )
            elif isinstance(a, Modify):
                old = self.live.pop(a.cloid, None)
                if old is not None:
                    self.live[a.new_cloid or a.cloid] = [old[0], round(a.size / LOT)]
                    self.prices[a.new_cloid or a.cloid] = a.price
                status = AckStatus.ACCEPTED if old else AckStatus.NOT_FOUND
                self.unanswered.append(
                    OrderAck(ts_ns=ts, cloid=a.cloid, status=status, request_id=a.request_id)
                )

    def open_orders(self) -> tuple[OpenOrder, ...]:
        """What the venue shows: each resting order, its remaining size and cumulative fill."""
        return tuple(
            OpenOrder(
                cloid=c,
                side=side,
                price=self.prices[c],
                size=n * LOT,
                filled_size=self.filled.get(c, 0) * LOT,
            )
            for c, (side, n) in self.live.items()
        )

    def reducing_exposure(self) -> int:
        """Lots that could still trade towards flat: resting and on their way, IOCs included."""
        side = Side.SELL if self.position > 0 else Side.BUY
        resting = sum(n for s, n in self.live.values() if s is side)
        taking = sum(round(p.size / LOT) for p in self.iocs if p.side is side)
        coming = 0
        for _, a in self.requests:
            if isinstance(a, Place) and a.side is side:
                coming += round(a.size / LOT)
            elif isinstance(a, Modify) and a.cloid in self.live and self.live[a.cloid][0] is side:
                coming += round(a.size / LOT)  # the new leg; the old one rests until then
        return resting + taking + coming

    def fill(self, cloid: str, side: Side, lots: int, price: float, ts: int) -> Fill:
        self.fill_id += 1
        self.position += lots if side is Side.BUY else -lots
        self.filled[cloid] = self.filled.get(cloid, 0) + lots
        return Fill(
            ts_ns=ts,
            cloid=cloid,
            price=price,
            size=lots * LOT,
            side=side,
            fill_id=f"f{self.fill_id}",
        )


def started(config: AppConfig, position_lots: int, ts: int = S) -> tuple[QuoteEngine, Ledger]:
    e = QuoteEngine(config, INST)
    (request,) = e.start(ts)
    ledger = Ledger(position_lots)
    e.on_event(
        VenueSnapshot(
            ts_ns=ts, exchange_ts_ns=ts, position=position_lots * LOT, request_id=request.request_id
        )
    )
    return e, ledger


def drive(e: QuoteEngine, ledger: Ledger, event, ts: int) -> list:
    actions = e.on_event(event, ts)
    for a in actions:
        if isinstance(a, RequestSnapshot):
            ledger.unanswered.append(
                VenueSnapshot(  # type: ignore[arg-type]
                    ts_ns=ts,
                    exchange_ts_ns=ts,
                    position=ledger.position * LOT,
                    orders=ledger.open_orders(),
                    request_id=a.request_id,
                )
            )
    ledger.send([a for a in actions if not isinstance(a, RequestSnapshot)], ts)
    return actions


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limit=st.integers(5, 40),
    start=st.floats(0.0, 3.5),
    short=st.booleans(),
    hard_multiple=st.sampled_from([2.0, 3.0]),
    halt_position=st.sampled_from(["to_limit", "flat"]),
    steps=st.lists(
        st.tuples(
            st.sampled_from(["book", "arrive", "answer", "trade", "ioc", "move", "jump"]),
            st.integers(0, 99),
        ),
        min_size=20,
        max_size=120,
    ),
)
def test_reducing_never_adds_more_than_the_position_towards_flat(
    limit, start, short, hard_multiple, halt_position, steps
):
    """Escalation IOCs and reduce-only quotes, with answers late, fills partial and the
    position pushed over the limit by fills the engine did not ask for (``jump``: another
    process, a liquidation): while REDUCING or HALTED the engine never adds to what could
    trade towards flat (resting, on its way, IOCs) beyond the venue's position, and no IOC
    fill takes the position across zero. A start beyond ``hard_multiple`` is HALTED, whose
    reduction goes to the limit or flat."""
    iocs = reduce_run(limit, start, short, hard_multiple, halt_position, steps)
    event("IOCs sent" if iocs else "no IOC")
    target(float(iocs), label="IOCs sent")


def reduce_run(limit, start, short, hard_multiple, halt_position, steps, trace=None):
    config = AppConfig(
        risk=DynamicRiskConfig(max_position=limit * LOT),
        kill_switch=KillSwitchConfig(hard_multiple=hard_multiple, halt_position=halt_position),
        orders=OrdersConfig(escalate_after_s=1.0, escalate_interval_s=1.0),
        strategy=StrategyConfig(order_size=0.01),
    )
    sign = -1 if short else 1
    e, ledger = started(config, round(limit * start) * sign)
    ts, bid = 2 * S, 100_000.0
    for kind, n in steps:
        ts += S // 4
        ledger.expire(ts)
        before = ledger.reducing_exposure()
        if kind == "book":
            drive(e, ledger, book(ts, bid), ts)
        elif kind == "move":
            bid += (n - 50) * 0.1
            drive(e, ledger, book(ts, bid), ts)
        elif kind == "arrive" and ledger.requests:
            ledger.arrive(n, ts)
        elif kind == "answer" and ledger.unanswered:
            drive(e, ledger, ledger.unanswered.pop(n % len(ledger.unanswered)), ts)
        elif kind == "trade" and ledger.live:
            # A resting order of ours trades, part or all of it.
            cloid = sorted(ledger.live)[n % len(ledger.live)]
            side, left = ledger.live[cloid]
            lots = 1 + n % left
            if lots == left:
                del ledger.live[cloid]
            else:
                ledger.live[cloid][1] -= lots
            drive(e, ledger, ledger.fill(cloid, side, lots, bid, ts), ts)
        elif kind == "jump":
            side = Side.BUY if sign > 0 else Side.SELL
            lots = 1 + n % (2 * limit)
            drive(e, ledger, ledger.fill(f"other-{n}", side, lots, bid, ts), ts)
        elif kind == "ioc" and ledger.iocs:
            ioc = ledger.iocs.pop(0)
            lots = n % (round(ioc.size / LOT) + 1)
            held = ledger.position
            if lots:
                drive(e, ledger, ledger.fill(ioc.cloid, ioc.side, lots, ioc.price, ts), ts)
            assert ledger.position * held >= 0, f"an IOC flipped {held} to {ledger.position}"
            ack = OrderAck(
                ts_ns=ts,
                cloid=ioc.cloid,
                status=AckStatus.CANCELED,
                request_id=ioc.request_id,
                filled_size=lots * LOT,
            )
            drive(e, ledger, ack, ts)
        else:
            drive(e, ledger, Timer(ts_ns=ts), ts)
        state = e.status().trading_state
        after = ledger.reducing_exposure()
        if trace is not None:
            trace.append((kind, n, state, ledger.position, before, after, e.orders.position_lots))
        if state in ("reducing", "halted") and after > before:
            assert after <= abs(ledger.position), (
                f"{after} lots could trade towards flat (from {before}), position "
                f"{ledger.position} ({state})"
            )
    return e.counters.escalations + e.counters.halt_reductions


def test_escalations_happen_in_the_property_runs():
    """The property above is about IOCs: a plain run of its kind sends them."""
    config = AppConfig(
        risk=DynamicRiskConfig(max_position=10 * LOT),
        orders=OrdersConfig(escalate_after_s=1.0, escalate_interval_s=1.0),
    )
    e, ledger = started(config, 15)
    ts = 2 * S
    for _ in range(20):
        ts += S // 4
        drive(e, ledger, book(ts), ts)
    ledger.arrive_all()
    assert e.counters.escalations >= 1 and ledger.iocs
    assert ledger.reducing_exposure() <= 15


def test_a_reducing_quote_rests_on_a_steady_book():
    """From the issue: in REDUCING the reducing side was sized by ``Q + |q|`` while the room
    was ``|q|``; the cut order no longer matched and was cancelled and placed again (about 60
    places and 60 cancels per 10 s). With a steady book and every answer back at once, at most
    10 requests go in 10 s."""
    config = AppConfig(
        risk=DynamicRiskConfig(max_position=20 * LOT),
        strategy=StrategyConfig(order_size=0.05),
        orders=OrdersConfig(escalate_after_s=None),
    )
    e, ledger = started(config, 25)
    ts = 2 * S
    requests = 0
    for _ in range(100):  # 10 s of books, 10 a second
        ts += S // 10
        actions = drive(e, ledger, book(ts), ts)
        requests += sum(not isinstance(a, RequestSnapshot) for a in actions)
        ledger.arrive_all()
        while ledger.unanswered:
            drive(e, ledger, ledger.unanswered.pop(0), ts)
    assert e.status().trading_state == "reducing"
    assert 1 <= requests <= 10
    asks = [n for side, n in ledger.live.values() if side is Side.SELL]
    assert asks and sum(asks) <= 25  # it rests, and cannot take the position past flat


def test_a_halt_for_a_position_beyond_hard_multiple_takes_it_back_to_the_limit_and_latches():
    """From the issue: the halt cancelled everything and never reduced, so the position stayed
    over the limit until a person acted. Now an IOC takes the excess back (to the limit by
    default, to flat with ``halt_position = "flat"``, nothing with ``"keep"``)."""
    for keep, goal in (("to_limit", 10), ("flat", 0), ("keep", None)):
        config = AppConfig(
            risk=DynamicRiskConfig(max_position=10 * LOT),
            kill_switch=KillSwitchConfig(hard_multiple=2.0, halt_position=keep),
        )
        e, ledger = started(config, 25)
        ts = 2 * S
        for _ in range(40):
            ts += S // 4
            drive(e, ledger, book(ts), ts)
            ledger.arrive_all()
            for ioc in ledger.iocs:  # each IOC takes all it asks for
                lots = round(ioc.size / LOT)
                drive(e, ledger, ledger.fill(ioc.cloid, ioc.side, lots, ioc.price, ts), ts)
                ack = OrderAck(
                    ts_ns=ts,
                    cloid=ioc.cloid,
                    status=AckStatus.CANCELED,
                    request_id=ioc.request_id,
                    filled_size=ioc.size,
                )
                drive(e, ledger, ack, ts)
            ledger.iocs.clear()
        assert e.status().trading_state == "halted", keep  # latched: a person resumes it
        if goal is None:
            assert ledger.position == 25 and e.counters.halt_reductions == 0
        else:
            assert ledger.position == goal, keep
            assert e.counters.halt_reductions >= 1
        assert not any(s is Side.BUY for s, _ in ledger.live.values())


def test_an_ioc_price_goes_through_the_venues_significant_figures():
    """From the issue: ``1.04785`` was sent (six significant figures) and refused by the
    venue, again and again, with the position at 1.5x the limit."""
    inst = Instrument(
        symbol="XYZ", tick_size=0.00001, lot_size=1.0, min_notional=10.0, max_sig_figs=5
    )
    config = AppConfig(
        risk=DynamicRiskConfig(max_position=100.0),
        orders=OrdersConfig(escalate_after_s=1.0, escalate_interval_s=1.0),
    )
    for position, side in ((150, Side.SELL), (-150, Side.BUY)):
        e = QuoteEngine(config, inst)
        (request,) = e.start(S)
        e.on_event(
            VenueSnapshot(
                ts_ns=S, exchange_ts_ns=S, position=position, request_id=request.request_id
            )
        )
        iocs: list[Place] = []
        ts = 2 * S
        for _ in range(12):
            ts += S // 4
            quote = BookUpdate(ts_ns=ts, bids=((1.04785, 500.0),), asks=((1.04796, 500.0),))
            iocs += [a for a in e.on_event(quote) if isinstance(a, Place) and not a.post_only]
        assert iocs, side
        for ioc in iocs:
            assert ioc.side is side
            digits = f"{ioc.price:.5f}".replace(".", "").lstrip("0")
            assert len(digits.rstrip("0")) <= 5, ioc.price
            # Never less aggressive than the touch: a sell at or below the bid, a buy at or
            # above the ask.
            if side is Side.SELL:
                assert ioc.price <= 1.04785
            else:
                assert ioc.price >= 1.04796


def test_a_fill_stamped_far_in_the_future_is_applied_not_dropped():
    """From the issue: a wall-clock step of more than 30 s made the engine drop every event
    but timers, fills included, until a quiet gap."""
    e = QuoteEngine(AppConfig(), INST)
    actions = e.on_event(book(1 * S))
    bid = next(a for a in actions if isinstance(a, Place) and a.side is Side.BUY)
    far = 1 * S + 3600 * S
    e.on_event(
        Fill(ts_ns=far, cloid=bid.cloid, price=bid.price, size=0.001, side=Side.BUY, fill_id="1")
    )
    assert e.position == 0.001
    assert e.on_event(book(far)) == []  # a book from the future is still not believed
    e.on_event(book(2 * S))
    assert e.position == 0.001
