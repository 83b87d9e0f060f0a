"""Replay of recorded market data through the same engine and simulated exchange.

Capture format (what ``market-maker record`` writes and hftbacktest's collectors wrote): gzip
text, one message per line, ``<local receive time in ns> <raw JSON>``.

- **Binance USD-M futures**: a REST depth snapshot line (``lastUpdateId``), ``@depth`` diffs,
  ``@trade`` and ``@bookTicker`` on a combined stream. Diffs before the snapshot are buffered;
  the first one applied must span ``lastUpdateId`` and each next one must continue the previous
  (``pu == u``). A gap (diffs lost or out of order) re-syncs without a fresh snapshot: diffs
  carry absolute sizes, so the next ``_RESYNC_DIFFS`` diffs rewrite every level that still
  moves, then the levels no diff since the gap set are dropped as stale. A missing diff that
  turns up late (a displaced line) is merged by its update ids: it sets the levels no later
  diff set, and once every gap it left is filled no level is dropped. A capture without a
  snapshot is rebuilt from its diffs alone. The best bid and ask always come from
  ``bookTicker``; the depth book supplies the size queued at deeper levels.
- **Hyperliquid**: ``l2Book`` (full snapshots) and ``trades`` batches.

Lines are replayed in receive-time order (``venues/replay_order.py``): small disorder is put
back in order, a line far from its neighbours' time is replayed at its time or, when that has
passed, dropped on its own. Malformed, truncated or unknown lines are skipped and counted in
``ReplayStats``; a truncated gzip stream ends the replay where the data ends. Our orders fill
against the recorded trades with the exchange core's queue model (see ``venues/exchange.py``).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from market_maker.config import InstrumentConfig
from market_maker.errors import VenueError
from market_maker.instruments import resolve_instrument
from market_maker.model import BookUpdate, Instrument, Side, Trade
from market_maker.venues.hyperliquid.messages import (
    CHANNEL_DECODERS,
    bbo_event,
    book_event,
    trade_events,
)
from market_maker.venues.replay_cache import (
    BOOK,
    BUY_TRADE,
    CLEAR,
    SELL_TRADE,
    SET_ASK,
    SET_BID,
    DecodedCapture,
    cache_enabled,
    cache_path,
    load_cached,
    save_cached,
)
from market_maker.venues.replay_order import MAX_NS as _MAX_NS
from market_maker.venues.replay_order import MIN_NS as _MIN_NS
from market_maker.venues.replay_order import LineOrder

__all__ = [
    "RECORDER_CHANNEL",
    "CaptureInfo",
    "ReplayMarket",
    "ReplayStats",
    "capture_funding",
    "capture_info",
    "read_capture",
]


_MAX_PENDING_DIFFS = 10_000
_RESYNC_DIFFS = 200  # diffs after a gap before untouched levels are dropped as stale
_MAX_GAPS = 4_096  # gaps a late diff may still fill
_MAX_PRICE = 1e12
_BUY = Side.BUY
_SELL = Side.SELL
RECORDER_CHANNEL = "recorder"
"""Channel of the lines ``market-maker record`` adds about itself (connects, reconnects)."""


def _price(text: str) -> float:
    """A price from the wire: finite, positive, believable; ValueError otherwise."""
    value = float(text)
    if not 0.0 < value < _MAX_PRICE:  # also NaN and inf
        raise ValueError(f"bad price {text!r}")
    return value


def _exchange_ns(ns: int | None) -> int | None:
    """An exchange time from the wire, in the years a capture can have; ValueError otherwise."""
    if ns is not None and not _MIN_NS <= ns <= _MAX_NS:
        raise ValueError(f"bad exchange time {ns}")
    return ns


def _qty(text: str) -> float:
    """A size from the wire: finite, not negative; ValueError otherwise."""
    value = float(text)
    if not 0.0 <= value < _MAX_PRICE:
        raise ValueError(f"bad size {text!r}")
    return value


class ReplayStats(msgspec.Struct, kw_only=True):
    lines: int = 0
    bad_lines: int = 0
    bad_timestamps: int = 0
    reordered: int = 0
    """Lines that arrived after one stamped later and were put back in order."""
    displaced: int = 0
    """Lines stamped far from the lines around them (moved in the file, or a bad clock): one
    from the future is replayed at its time, one from the past is dropped (or mended into the
    depth book); see ``venues/replay_order.py``."""
    dropped: int = 0
    """Lines dropped for their time: later than lines already replayed (displaced, or beyond
    the reorder window), or held for a time the stream never reached."""
    books: int = 0
    trades: int = 0
    depth_diffs: int = 0
    depth_snapshots: int = 0
    """REST depth snapshots (``lastUpdateId``) read; with no diffs either, the capture has
    no depth and the queue ahead of an order is the displayed touch size."""
    depth_gaps: int = 0
    """Depth diffs that did not continue the previous one (each starts a re-sync)."""
    depth_resyncs: int = 0
    """Depth books rebuilt from later diffs' absolute levels after a gap (or no snapshot)."""
    depth_mended: int = 0
    """Late depth diffs merged into the book by their update ids (the levels no later diff
    set), closing the gap their absence opened."""
    skipped_before_snapshot: int = 0
    notes: int = 0
    """Lines a recorder wrote about itself (reconnects, gaps in the recording)."""
    funding_lines: int = 0
    """Funding-rate lines (Binance ``@markPrice``, Hyperliquid ``activeAssetCtx``): read for
    the funding series (``capture_funding``), not traded on."""


def read_capture(
    path: str | Path, stats: ReplayStats, done: list[float] | None = None
) -> Iterator[tuple[int, bytes]]:
    """``(local_ns, raw_json)`` per line; bad lines are counted and skipped. ``done[0]`` is
    kept at the fraction of the (compressed) file read, for progress bars."""
    with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) as fh:
        size = max(1, os.fstat(raw.fileno()).st_size)
        try:
            for line in fh:
                stats.lines += 1
                if done is not None and not stats.lines & 1023:
                    done[0] = raw.tell() / size
                head, sep, body = line.partition(b" ")
                if not sep or not head.isdigit() or not body.strip():
                    stats.bad_lines += 1
                    continue
                yield int(head), body
        except (EOFError, zlib.error, gzip.BadGzipFile):
            stats.bad_lines += 1  # a truncated capture: replay what was there


class CaptureInfo(msgspec.Struct, frozen=True):
    """What the first lines of a capture say: the market (venue), symbol, a price of the
    market, and what the lines showed of it (``evidence``, for messages)."""

    venue: str
    symbol: str
    price: float | None
    evidence: str = ""
    funding: bool = False
    """Funding-rate lines (``@markPrice``, ``activeAssetCtx``) among the first lines."""


class _HlLevelPeek(msgspec.Struct):
    px: str


class _PeekCoin(msgspec.Struct):
    coin: str | None = None
    levels: list[list[_HlLevelPeek]] | None = None


class _PeekTicker(msgspec.Struct):
    s: str | None = None
    b: str | None = None


class _PeekBinance(msgspec.Struct):
    """The fields that tell Binance's markets apart (``@depth``, ``@bookTicker``, ``@trade``):
    futures diffs carry ``pu`` and futures events a transaction time ``T``; spot diffs and
    tickers have neither; COIN-M events name their ``ps`` pair and ``_PERP`` symbol."""

    e: str | None = None
    s: str | None = None
    ps: str | None = None
    pu: int | None = None
    U: int | None = None
    T: int | None = None
    E: int | None = None
    X: str | None = None
    M: bool | None = None
    b: str | list[Any] | None = None


class _PeekSnapshot(msgspec.Struct):
    lastUpdateId: int | None = None
    E: int | None = None
    T: int | None = None
    symbol: str | None = None
    pair: str | None = None


_peek_binance = msgspec.json.Decoder(_PeekBinance)
_peek_snapshot = msgspec.json.Decoder(_PeekSnapshot)
_MARKETS = ("binance-usdm", "binance-coinm", "binance-spot", "hyperliquid")


def _binance_market(symbol: str | None, futures: list[str], spot: list[str]) -> str | None:
    """``binance-coinm`` for an inverse symbol (``ETHUSD_PERP``), else the kind the fields
    showed; None when they showed nothing or both kinds."""
    if symbol is not None and "_" in symbol:
        return "binance-coinm"
    if futures and not spot:
        return "binance-usdm"
    if spot and not futures:
        return "binance-spot"
    return None


def capture_info(path: str | Path, market: str | None = None) -> CaptureInfo:
    """Market, symbol (Binance stream name or ``s``; Hyperliquid ``coin``) and a price.

    The market comes from the capture's own lines and is never guessed: Binance USD-M and
    COIN-M futures stamp a transaction time (``T``) and chain depth diffs by ``pu``; spot
    does neither; COIN-M symbols end in ``_PERP`` (or a delivery date). Lines that show no
    kind, or both, raise one ``VenueError`` naming ``--market`` and ``[instrument] market``;
    ``market`` (that setting) settles it, and is refused when the lines say otherwise."""
    stats = ReplayStats()
    venue = symbol = None
    price: float | None = None
    futures: list[str] = []
    spot: list[str] = []
    funding = False
    try:
        for _, body in read_capture(path, stats):
            if stats.lines > 2_000 or (
                symbol is not None and price is not None and (futures or spot)
            ):
                break
            try:
                msg = _envelope.decode(body)
            except msgspec.DecodeError:  # ValidationError is one
                continue
            if msg.channel is not None:
                venue = "hyperliquid"
                funding = funding or msg.channel == "activeAssetCtx"
                coin = _peek_hl(msg)
                if coin is not None:
                    symbol = symbol or coin[0]
                    price = price or coin[1]
            elif msg.stream is not None:
                venue = "binance"
                name, _, kind = msg.stream.partition("@")
                symbol = symbol or name.upper()
                if kind.startswith("markPrice"):
                    funding = True
                    futures.append("a markPrice stream (futures funding)")
                try:
                    peek = _peek_binance.decode(msg.data)
                except msgspec.DecodeError:
                    continue
                _binance_evidence(kind, peek, futures, spot)
                if kind == "bookTicker" and isinstance(peek.b, str):
                    price = price or _float(peek.b)
            elif msg.lastUpdateId is not None:
                venue = venue or "binance"
                try:
                    snap = _peek_snapshot.decode(body)
                except msgspec.DecodeError:
                    continue
                if snap.T is not None or snap.pair is not None:
                    futures.append("the depth snapshot has a transaction time T")
                else:
                    spot.append("the depth snapshot has no E/T times")
    except OSError as exc:
        raise VenueError(f"{path}: cannot read the capture: {exc.strerror or exc}") from None
    if venue is None:
        raise VenueError(
            f"{path}: not a Binance (USD-M, COIN-M, spot) or Hyperliquid capture "
            "(<ns> <json> lines, gzip)"
        )
    if symbol is None:
        raise VenueError(f"{path}: no symbol in the first lines of the {venue} capture")
    evidence = "; ".join(dict.fromkeys(futures + spot))
    if venue == "binance":
        found = _binance_market(symbol, futures, spot)
        if market is not None:
            if market == "hyperliquid" or (found is not None and found != market):
                raise VenueError(
                    f"{path}: [instrument] market / --market says {market}, but the capture "
                    f"is {found or 'Binance'} ({evidence or 'its stream names'})"
                )
            found = market
        if found is None:
            why = (
                f"its lines show both ({evidence})"
                if futures and spot
                else "its lines carry no field that tells them apart (no depth diff, "
                "no transaction time)"
            )
            raise VenueError(
                f"{path}: {symbol} could be Binance USD-M futures or spot: {why}; "
                "pass --market binance-usdm or --market binance-spot "
                "(or [instrument] market in the config)"
            )
        venue = found
    elif market is not None and market != venue:
        raise VenueError(
            f"{path}: [instrument] market / --market says {market}, but the capture is {venue}"
        )
    return CaptureInfo(venue=venue, symbol=symbol, price=price, evidence=evidence, funding=funding)


def _binance_evidence(kind: str, peek: _PeekBinance, futures: list[str], spot: list[str]) -> None:
    """What one Binance stream message shows of its market."""
    if peek.ps is not None:
        futures.append("events name a pair (ps)")
    if kind.startswith("depth") and peek.U is not None:
        if peek.pu is not None:
            futures.append("depth diffs carry pu")
        else:
            spot.append("depth diffs have no pu")
    elif kind == "bookTicker":
        if peek.T is not None:
            futures.append("bookTicker carries T")
        elif peek.E is None and peek.e is None:
            spot.append("bookTicker has no e/E/T")
    elif kind == "trade":
        if peek.X is not None:
            futures.append("trades carry X")
        elif peek.M is not None:
            spot.append("trades carry M")


def capture_funding(path: str | Path, venue: str) -> list[tuple[int, float]]:
    """``(receive_ns, rate)`` of every funding-rate line in the capture (Binance
    ``@markPrice`` ``r``; Hyperliquid ``activeAssetCtx`` ``funding``), in receive order; bad
    lines are skipped. The rate in force at a funding time is the last one heard before it."""
    stats = ReplayStats()
    out: list[tuple[int, float]] = []
    binance = venue.startswith("binance")
    marker = b"@markPrice" if binance else b"activeAssetCtx"
    for ns, body in read_capture(path, stats):
        if marker not in body:
            continue
        try:
            env = _envelope.decode(body)
            if binance:
                rate = _funding_rate(_bn_mark.decode(env.data).r)
            else:
                rate = _funding_rate(_hl_ctx.decode(env.data).ctx.funding)
        except (msgspec.DecodeError, ValueError):
            continue
        out.append((ns, rate))
    out.sort()
    return out


def _peek_hl(msg: _Envelope) -> tuple[str, float | None] | None:
    """``(coin, price)`` from an ``l2Book`` or ``trades`` message."""
    try:
        if msg.channel == "l2Book":
            book = msgspec.json.decode(msg.data, type=_PeekCoin)
            px = book.levels[0][0].px if book.levels and book.levels[0] else None
            return (book.coin, _float(px) if px else None) if book.coin else None
        if msg.channel == "trades":
            trades = msgspec.json.decode(msg.data, type=list[_PeekCoin])
            return (trades[0].coin, None) if trades and trades[0].coin else None
    except msgspec.DecodeError:
        return None
    return None


def _float(text: str) -> float | None:
    """``_price(text)``, or None instead of an error."""
    try:
        return _price(text)
    except ValueError:
        return None


# ----- wire types -------------------------------------------------------------------------------


class _Envelope(msgspec.Struct):
    stream: str | None = None
    data: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    channel: str | None = None
    lastUpdateId: int | None = None
    bids: list[tuple[str, str]] | None = None
    asks: list[tuple[str, str]] | None = None


class _BnDepth(msgspec.Struct):
    """A depth diff: futures chain diffs by ``pu`` (the previous diff's ``u``); spot diffs
    have no ``pu`` and continue when ``U`` is the previous ``u + 1``."""

    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    pu: int | None = None

    @property
    def prev(self) -> int:
        """The last update id before this diff (``pu``; spot: ``U - 1``)."""
        return self.U - 1 if self.pu is None else self.pu


class _BnTicker(msgspec.Struct):
    b: str
    B: str
    a: str
    A: str


class _BnTrade(msgspec.Struct):
    p: str
    q: str
    m: bool
    T: int


class _BnTickerMsg(msgspec.Struct):
    data: _BnTicker


class _BnMark(msgspec.Struct):
    """Binance ``@markPrice``: ``r`` the funding rate, ``T`` the next funding time (ms)."""

    r: str
    T: int | None = None


class _HlCtxBody(msgspec.Struct):
    funding: str


class _HlCtx(msgspec.Struct):
    """Hyperliquid ``activeAssetCtx``: ``ctx.funding`` is the hourly funding rate."""

    ctx: _HlCtxBody


def _funding_rate(text: str) -> float:
    """A funding rate from the wire: finite, within +/-10 % a payment; ValueError otherwise."""
    value = float(text)
    if not -0.1 <= value <= 0.1:  # also NaN
        raise ValueError(f"bad funding rate {text!r}")
    return value


_bn_mark = msgspec.json.Decoder(_BnMark)
_hl_ctx = msgspec.json.Decoder(_HlCtx)
_envelope = msgspec.json.Decoder(_Envelope)
_bn_ticker_msg = msgspec.json.Decoder(_BnTickerMsg)
_bn_depth = msgspec.json.Decoder(_BnDepth)
_bn_ticker = msgspec.json.Decoder(_BnTicker)
_bn_trade = msgspec.json.Decoder(_BnTrade)
_hl_book = CHANNEL_DECODERS["l2Book"]
_hl_bbo = CHANNEL_DECODERS["bbo"]
_hl_trades = CHANNEL_DECODERS["trades"]


def _last_id(diff: _BnDepth) -> int:
    return diff.u


class ReplayMarket:
    """A ``MarketSource`` over a capture file: books and trades in receive-time order."""

    def __init__(
        self,
        path: str | Path,
        instrument: Instrument | None = None,
        *,
        overrides: InstrumentConfig | None = None,
        cache: bool | None = None,
    ) -> None:
        """Rules come from ``instrument`` if given, else from the instruments table for the
        capture's own symbol with ``overrides`` (``[instrument]`` / CLI flags) applied.

        With ``cache`` (the default unless ``MM_CACHE_DIR=off``) the capture is decoded once
        into a file in the replay cache (see ``venues/replay_cache.py``) and read from there:
        the same events, the same depth book at each of them and the same stats (complete from
        the start), without the gzip and JSON."""
        self.path = Path(path)
        market = instrument.venue if instrument is not None and instrument.venue else None
        info = capture_info(path, market or (overrides.market if overrides else None))
        self.venue = info.venue
        self.symbol = info.symbol
        self.evidence = info.evidence
        self.has_funding = info.funding
        self._binance_venue = self.venue.startswith("binance")
        self._spot = self.venue == "binance-spot"
        self.stats = ReplayStats()
        self.instrument = instrument or resolve_instrument(
            info.venue, info.symbol, price=info.price, overrides=overrides
        )
        self._tick = self.instrument.tick_size
        self._bids: dict[int, float] = {}
        self._asks: dict[int, float] = {}
        self._synced_u: int | None = None
        # Diffs that arrive before the depth snapshot, bounded: a capture without one must
        # not grow memory without end (the oldest are useless once the snapshot comes anyway).
        self._pending_diffs: deque[_BnDepth] = deque(maxlen=_MAX_PENDING_DIFFS)
        # After a gap: the update ids still missing ([after, upto] pairs, for late diffs to
        # fill), the re-syncs due (at diff count, ids missing after and upto), and the id of
        # the diff that last set each level (kept while a gap or a re-sync is open).
        self._gaps: list[tuple[int, int]] = []
        self._resyncs: deque[tuple[int, int, int]] = deque()
        self._bid_u: dict[int, int] = {}
        self._ask_u: dict[int, int] = {}
        self._diff_count = 0
        self._touch: (
            tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]] | None
        ) = None
        """The last book's (bids, asks): the queue where no depth is known."""
        """The last book popped: the touch, for an order's queue when there is no depth."""
        self._buffer: deque[BookUpdate | Trade] = deque()
        self._read_fraction = [0.0]
        self._order = LineOrder(read_capture(path, self.stats, self._read_fraction), self.stats)
        self._done = False
        self._last_ns = -1
        self._journal: DecodedCapture | None = None  # set while building the cache
        self._cache: DecodedCapture | None = None
        # Replaying the cache: its event columns, the next event and its first level value,
        # and the event before which the depth book stands (the latest one peeked; -1: none).
        self._decoded: dict[str, list[Any]] | None = None
        self._stamps: list[int] = []
        self._events = 0
        self._next_event = 0
        self._next_value = 0
        self._seen = -1
        self.cached = False
        """True when events come from the replay cache rather than the capture's text."""
        if cache_enabled() if cache is None else cache:
            self._use_cache()

    # ----- MarketSource ----------------------------------------------------------------------

    def peek_ns(self) -> int | None:
        if self._cache is not None:
            i = self._next_event
            if i < self._events:
                self._seen = i  # the depth book now has the changes that came before it
                return self._stamps[i]
            self._seen = self._events
            self._done = True
            return None
        while not self._buffer:
            if self._done:
                return None
            self._read_one()
        return self._buffer[0].ts_ns

    def pop(self) -> BookUpdate | Trade:
        if self._cache is None:
            ev = self._buffer.popleft()
            if type(ev) is BookUpdate:
                self._touch = (ev.bids, ev.asks)
            return ev
        kind, ts, xts, a, b = self.pop_parts()
        exchange_ts = None if xts < 0 else xts
        if kind == BOOK:
            return BookUpdate(ts_ns=ts, bids=a, asks=b, exchange_ts_ns=exchange_ts)
        return Trade(
            ts_ns=ts,
            price=a,
            size=b,
            aggressor=_BUY if kind == BUY_TRADE else _SELL,
            exchange_ts_ns=exchange_ts,
        )

    def pop_parts(self) -> tuple[int, int, int, Any, Any]:
        """The next event as ``(kind, ts_ns, exchange_ts_ns, a, b)`` without building it (the
        simulated exchange builds the one the engine receives, at its delivery time): a book
        (``MARKET_BOOK``) with ``a, b`` its bids and asks, or a trade (``MARKET_BUY``,
        ``MARKET_SELL``: the aggressor's side) with ``a, b`` its price and size;
        ``exchange_ts_ns`` is -1 when the venue gave none. IndexError past the end."""
        cache = self._cache
        if cache is None:
            ev = self._buffer.popleft()
            xts = -1 if ev.exchange_ts_ns is None else ev.exchange_ts_ns
            if isinstance(ev, BookUpdate):
                self._touch = (ev.bids, ev.asks)
                return BOOK, ev.ts_ns, xts, ev.bids, ev.asks
            kind = BUY_TRADE if ev.aggressor is _BUY else SELL_TRADE
            return kind, ev.ts_ns, xts, ev.price, ev.size
        c = self._decoded
        if c is None:
            c = self._decoded = cache.columns()  # on the first event: not for a peek at stats
        i = self._next_event
        if i >= self._events:
            raise IndexError("the replay has ended")
        self._next_event = i + 1
        kind = c["kind"][i]
        if kind != BOOK:
            return kind, self._stamps[i], c["exchange_ts_ns"][i], c["price"][i], c["size"][i]
        counts = c["levels"][i]
        values = c["level_values"]
        at = self._next_value
        n_bids = counts >> 32
        n_asks = counts & 0xFFFFFFFF
        end = at + 2 * n_bids
        stop = self._next_value = end + 2 * n_asks
        # One level a side (a bookTicker) without the comprehensions' frames.
        if n_bids == 1:
            bids: tuple[tuple[float, float], ...] = ((values[at], values[at + 1]),)
        else:
            bids = tuple([(values[j], values[j + 1]) for j in range(at, end, 2)])
        if n_asks == 1:
            asks: tuple[tuple[float, float], ...] = ((values[end], values[end + 1]),)
        else:
            asks = tuple([(values[j], values[j + 1]) for j in range(end, stop, 2)])
        self._touch = (bids, asks)
        return BOOK, self._stamps[i], c["exchange_ts_ns"][i], bids, asks

    def load(self) -> float:
        return 1.0

    def fraction_done(self) -> float:
        """How much of the capture has been read, 0 to 1 (for progress bars)."""
        if self._done:
            return 1.0
        if self._cache is not None:
            return self._next_event / max(1, self._events)
        return min(1.0, self._read_fraction[0])

    def displayed_size(self, side: Side, price_ticks: int) -> float:
        """Size resting at a price in the depth book (Binance) or the last snapshot, as of the
        latest event peeked; from the cache, looked up in its changes (``size_at``).

        With no depth yet (a capture without depth lines, or before the first snapshot syncs
        it) the displayed touch size is taken as ahead of an order at the touch or behind it,
        never nothing: only a price better than the touch starts a level of its own."""
        cache = self._cache
        if cache is not None:
            clears = cache.clear_event
            if len(clears) and clears[0] <= self._seen:
                return cache.size_at(price_ticks * 2 + (side is _SELL), self._seen)
        else:
            book = self._bids if side is Side.BUY else self._asks
            if book:
                return book.get(price_ticks, 0.0)
        touch = self._touch
        if touch is None:
            return 0.0
        levels = touch[0] if side is Side.BUY else touch[1]
        if not levels:
            return 0.0
        price, size = levels[0]
        ticks = math.floor(price / self._tick + 0.5)
        behind = price_ticks <= ticks if side is Side.BUY else price_ticks >= ticks
        return size if behind else 0.0

    def depth(self, side: Side) -> dict[int, float]:
        """The whole depth book on ``side`` as of the latest event peeked: ticks to size (a
        copy). From the cache it is assembled from the changes: for checks, not a hot path."""
        cache = self._cache
        if cache is not None:
            bids, asks = cache.book_at(self._seen)
            return bids if side is Side.BUY else asks
        return dict(self._bids if side is Side.BUY else self._asks)

    def trade_times_s(self, limit: int) -> list[float]:
        """Receive times (seconds) of up to ``limit`` aggressive orders from the start, for
        calibration; prints of one order (same exchange time and side) count once. Reads the
        replay cache when there is one, else only the trade lines of the capture."""
        if self._cache is not None:
            return self._cache.trade_times_s(limit)
        out: list[float] = []
        last: tuple[int, str] | None = None
        stats = ReplayStats()
        binance = self._binance_venue
        order = LineOrder(read_capture(self.path, stats), stats)
        latest = -1
        while (line := order.next()) is not None and len(out) < limit:
            ns, body = line
            try:
                if binance:
                    if b"@trade" not in body:
                        continue
                    env = _envelope.decode(body)
                    tr = _bn_trade.decode(env.data)
                    keys = [(tr.T, "S" if tr.m else "B")]
                else:
                    if b'"trades"' not in body:
                        continue
                    env = _envelope.decode(body)
                    keys = [(t.time, t.side) for t in _hl_trades(env.data)]
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if ns < latest:
                continue  # too late (displaced): it would break the fit
            latest = ns
            for key in keys:
                if key != last:
                    out.append(ns / 1e9)
                    last = key
        return out[:limit]

    def exchange_delays_ms(self, limit: int) -> list[float]:
        """Receive time minus the venue's (milliseconds) of the first ``limit`` events that
        carry both, from the start, without moving this replay (``capture_feed_latency``).
        Reads the replay cache's time columns when there is one, else decodes the capture."""
        out: list[float] = []
        cache = self._cache
        if cache is None:
            market = ReplayMarket(self.path, self.instrument, cache=False)
            while len(out) < limit and market.peek_ns() is not None:
                ev = market.pop()
                if ev.exchange_ts_ns is not None:
                    out.append((ev.ts_ns - ev.exchange_ts_ns) / 1e6)
            return out
        for ts, xts in zip(self._stamps, cache.exchange_ts_ns, strict=True):
            if xts >= 0:
                out.append((ts - xts) / 1e6)
                if len(out) >= limit:
                    break
        return out

    # ----- the replay cache ------------------------------------------------------------------

    def _use_cache(self) -> None:
        """Replay from the decoded form of the capture, building (and saving) it if needed."""
        file, key = cache_path(self.path, self._tick, self.venue)
        decoded = load_cached(file, key)
        if decoded is None:
            builder = ReplayMarket(self.path, self.instrument, cache=False)
            decoded = builder._journal = DecodedCapture()
            while builder.peek_ns() is not None:
                decoded.add_event(builder.pop())
            decoded.stats = msgspec.structs.asdict(builder.stats)
            decoded.index_depth()
            save_cached(decoded, file, key)  # unwritable: the next run decodes again
        self._cache = decoded
        self._stamps = decoded.ts_ns.tolist()
        self._events = len(decoded)
        self._next_event = 0
        self._next_value = 0
        self.stats = ReplayStats(**decoded.stats)
        self.cached = True

    def _journal_book(self) -> None:
        """While building the cache: the depth book was replaced wholesale."""
        journal = self._journal
        if journal is None:
            return
        at = self.stats.books + self.stats.trades
        journal.add_op(at, CLEAR)
        for code, book in ((SET_BID, self._bids), (SET_ASK, self._asks)):
            for ticks, size in book.items():
                journal.add_op(at, code, ticks, size)

    # ----- parsing ---------------------------------------------------------------------------

    def _read_one(self) -> None:
        line = self._order.next()
        if line is None:
            self._done = True
            return
        ns, body = line
        late = ns < self._last_ns  # the engine has seen later lines: too late to replay
        if late and not (self._binance_venue and (b"@depth" in body or b"lastUpdateId" in body)):
            self.stats.dropped += 1
            return
        try:
            if late:
                self._late(_envelope.decode(body))
                return
            if self._binance_venue and b"@bookTicker" in body:
                # Two thirds of a Binance capture: one typed decode, no envelope.
                self._ticker(ns, _bn_ticker_msg.decode(body).data)
            else:
                env = _envelope.decode(body)
                if self._binance_venue:
                    self._binance(ns, env)
                else:
                    self._hyperliquid(ns, env)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError):
            self.stats.bad_lines += 1
            return
        self._last_ns = ns

    def _ticks(self, price: str) -> int:
        return math.floor(_price(price) / self._tick + 0.5)

    def _binance(self, ns: int, env: _Envelope) -> None:
        stream = env.stream or ""
        if env.lastUpdateId is not None:
            self._snapshot(env)
            return
        if not env.data:
            raise ValueError("no data")
        if stream.endswith("@bookTicker"):
            self._ticker(ns, _bn_ticker.decode(env.data))
        elif stream.endswith("@trade"):
            tr = _bn_trade.decode(env.data)
            self._buffer.append(
                Trade(
                    ts_ns=ns,
                    price=_price(tr.p),
                    size=_qty(tr.q),
                    aggressor=Side.SELL if tr.m else Side.BUY,  # m: the buyer was the maker
                    exchange_ts_ns=_exchange_ns(tr.T * 1_000_000),
                )
            )
            self.stats.trades += 1
        elif "@depth" in stream:
            self._depth(self._decode_diff(env.data))
        elif "@markPrice" in stream:
            _funding_rate(_bn_mark.decode(env.data).r)
            self.stats.funding_lines += 1
        else:
            raise ValueError("unknown stream")

    def _ticker(self, ns: int, t: _BnTicker) -> None:
        book = BookUpdate(
            ts_ns=ns, bids=((_price(t.b), _qty(t.B)),), asks=((_price(t.a), _qty(t.A)),)
        )
        self._buffer.append(book)
        self.stats.books += 1

    def _decode_diff(self, data: msgspec.Raw) -> _BnDepth:
        diff = _bn_depth.decode(data)
        if diff.pu is None and not self._spot:
            raise ValueError("a futures depth diff without pu")
        return diff

    def _depth(self, diff: _BnDepth) -> None:
        self.stats.depth_diffs += 1
        if self._synced_u is None and not self._bids:
            pending = self._pending_diffs
            pending.append(diff)
            if len(pending) == _MAX_PENDING_DIFFS:
                self._rebuild_without_snapshot()
        else:
            self._apply_diff(diff)

    def _snapshot(self, env: _Envelope) -> None:
        self.stats.depth_snapshots += 1
        self._bids = {self._ticks(p): _qty(q) for p, q in env.bids or ()}
        self._asks = {self._ticks(p): _qty(q) for p, q in env.asks or ()}
        self._journal_book()
        last = env.lastUpdateId
        assert last is not None
        self._synced_u = None
        self._forget_gaps()
        # Futures: the first diff applied spans lastUpdateId; spot: lastUpdateId + 1 (its
        # diffs start after the snapshot's id), and one ending at lastUpdateId is old.
        spot = 1 if self._spot else 0
        for diff in sorted(self._pending_diffs, key=_last_id):  # a late one may be among them
            if diff.u < last + spot:
                self.stats.skipped_before_snapshot += 1
                continue
            first = self._synced_u is None
            if first and not diff.U <= last + spot <= diff.u:
                self._gap(last, diff.prev)
            self._apply_diff(diff, first=first)
        self._pending_diffs.clear()
        if self._synced_u is None:
            self._synced_u = last

    def _rebuild_without_snapshot(self) -> None:
        """No snapshot after ``_MAX_PENDING_DIFFS`` diffs: build the book from them alone
        (every level from absolute sizes: nothing to drop as stale later)."""
        self.stats.depth_gaps += 1
        self.stats.depth_resyncs += 1
        self._forget_gaps()
        first = True
        for diff in sorted(self._pending_diffs, key=_last_id):
            self._apply_diff(diff, first=first)
            first = False
        self._pending_diffs.clear()

    def _forget_gaps(self) -> None:
        self._gaps.clear()
        self._resyncs.clear()
        self._bid_u.clear()
        self._ask_u.clear()

    def _gap(self, after: int, upto: int) -> None:
        """The diffs with ids in (``after``, ``upto``] are missing: a late one can still fill
        them in (``_mend``); ``_RESYNC_DIFFS`` diffs later, the levels none of the diffs since
        set are dropped as stale unless the gap was filled by then."""
        self.stats.depth_gaps += 1
        if upto > after:
            self._gaps.append((after, upto))
            if len(self._gaps) > _MAX_GAPS:
                del self._gaps[0]  # never filled: a late diff for it is dropped
        self._resyncs.append((self._diff_count + _RESYNC_DIFFS, after, upto))

    def _levels(self, diff: _BnDepth) -> list[list[tuple[int, float]]]:
        """A diff's bid and ask levels as (ticks, size); every level is checked before any is
        applied, so a bad diff changes nothing."""
        inv = 1.0 / self._tick
        return [
            [(int(_price(price) * inv + 0.5), _qty(qty)) for price, qty in levels]
            for levels in (diff.b, diff.a)
        ]

    def _apply_diff(self, diff: _BnDepth, *, first: bool = False) -> None:
        if not first and self._synced_u is not None and diff.prev != self._synced_u:
            self._gap(self._synced_u, diff.prev)
        parsed = self._levels(diff)
        track = bool(self._gaps or self._resyncs)
        u = diff.u
        for book, setters, levels in zip(
            (self._bids, self._asks), (self._bid_u, self._ask_u), parsed, strict=True
        ):
            for ticks, size in levels:
                if size > 0.0:
                    book[ticks] = size
                else:
                    book.pop(ticks, None)
                if track:
                    setters[ticks] = u
        journal = self._journal
        if journal is not None:
            at = self.stats.books + self.stats.trades
            for code, levels in zip((SET_BID, SET_ASK), parsed, strict=True):
                for ticks, size in levels:
                    journal.add_op(at, code, ticks, size if size > 0.0 else 0.0)
        self._synced_u = u
        self._diff_count += 1
        resyncs = self._resyncs
        while resyncs and resyncs[0][0] <= self._diff_count:
            _, after, upto = resyncs.popleft()
            if upto <= after or self._still_missing(after, upto):
                self._drop_stale(upto)
        self._tidy_gaps()

    def _still_missing(self, after: int, upto: int) -> bool:
        return any(a < upto and b > after for a, b in self._gaps)

    def _drop_stale(self, since: int) -> None:
        """Drop the levels no diff after id ``since`` set: a lost diff may have changed them."""
        bid_u, ask_u = self._bid_u, self._ask_u
        self._bids = {t: q for t, q in self._bids.items() if bid_u.get(t, -1) > since}
        self._asks = {t: q for t, q in self._asks.items() if ask_u.get(t, -1) > since}
        self._journal_book()
        self.stats.depth_resyncs += 1

    def _tidy_gaps(self) -> None:
        """With no gap open and no re-sync due, the levels' setters are not needed."""
        if not self._gaps and not self._resyncs and (self._bid_u or self._ask_u):
            self._bid_u.clear()
            self._ask_u.clear()

    def _late(self, env: _Envelope) -> None:
        """A depth line later than lines already replayed: a snapshot still awaited is used,
        a diff is merged into the book where it belongs (``_mend``); the rest is dropped."""
        if env.lastUpdateId is not None:
            if self._synced_u is None and not self._bids:
                self._snapshot(env)
                return
        elif (
            "@depth" in (env.stream or "") and env.data and self._mend(self._decode_diff(env.data))
        ):
            return
        self.stats.dropped += 1

    def _mend(self, diff: _BnDepth) -> bool:
        """Merge a late diff: it sets the levels that no later diff set (diffs carry absolute
        sizes, so for those its size is the book's). False when it fills no gap (a duplicate,
        or before the snapshot): the book is right without it."""
        prev = diff.prev
        if self._synced_u is None or prev == self._synced_u:
            self._depth(diff)  # the snapshot is still awaited, or it is simply the next diff
            return True
        gaps = self._gaps
        at = next(
            (i for i, (a, b) in enumerate(gaps) if a <= prev and diff.u <= b),
            None,
        )
        if at is None:
            return False
        parsed = self._levels(diff)
        self.stats.depth_diffs += 1
        self.stats.depth_mended += 1
        u = diff.u
        journal = self._journal
        event = self.stats.books + self.stats.trades
        for code, book, setters, levels in zip(
            (SET_BID, SET_ASK),
            (self._bids, self._asks),
            (self._bid_u, self._ask_u),
            parsed,
            strict=True,
        ):
            for ticks, size in levels:
                if setters.get(ticks, -1) >= u:
                    continue  # a later diff set it: that size is the book's
                setters[ticks] = u
                if size > 0.0:
                    book[ticks] = size
                else:
                    book.pop(ticks, None)
                if journal is not None:
                    journal.add_op(event, code, ticks, size if size > 0.0 else 0.0)
        a, b = gaps.pop(at)
        gaps[at:at] = [g for g in ((a, prev), (u, b)) if g[1] > g[0]]
        self._resyncs = deque(
            r for r in self._resyncs if r[2] <= r[1] or self._still_missing(r[1], r[2])
        )
        self._tidy_gaps()
        return True

    def _hyperliquid(self, ns: int, env: _Envelope) -> None:
        if not env.data:
            raise ValueError("no data")
        channel = env.channel
        if channel == "l2Book":
            book = book_event(_hl_book(env.data), ns)
            _exchange_ns(book.exchange_ts_ns)
            inv = 1.0 / self._tick
            self._bids = {math.floor(px * inv + 0.5): sz for px, sz in book.bids}
            self._asks = {math.floor(px * inv + 0.5): sz for px, sz in book.asks}
            self._journal_book()
            self.stats.books += 1
            self._buffer.append(book)
        elif channel == "bbo":
            bbo = bbo_event(_hl_bbo(env.data), ns)
            _exchange_ns(bbo.exchange_ts_ns)
            self._buffer.append(bbo)
            self.stats.books += 1
        elif channel == "trades":
            # The whole batch is checked before any of it is used: a bad line changes nothing.
            trades = trade_events(_hl_trades(env.data), ns)
            for trade in trades:
                _exchange_ns(trade.exchange_ts_ns)
            self._buffer.extend(trades)
            self.stats.trades += len(trades)
        elif channel == "activeAssetCtx":
            _funding_rate(_hl_ctx.decode(env.data).ctx.funding)
            self.stats.funding_lines += 1
        elif channel in ("subscriptionResponse", "pong"):
            return
        elif channel == RECORDER_CHANNEL:
            self.stats.notes += 1  # the recorder's own notes (reconnects)
        else:
            raise ValueError("unknown channel")
