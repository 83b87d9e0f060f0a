"""A loopback Hyperliquid websocket exchange (a real ``websockets`` server on 127.0.0.1), for
tests and for ``market-maker fake-exchange`` (try the venue offline).

What it does, per ``reference/hyperliquid-verified.md`` section 4:

- the greeting text frame on connect; ``subscriptionResponse`` acks echoing the subscription
  (plus a field the server adds, so clients must match by subset); ``pong`` for
  ``{"method": "ping"}``; an idle close after ``idle_timeout_s`` (60 s) without client messages;
- a market process (a random walk of the mid on a 1-tick grid, Poisson trades that sweep an
  exponential number of ticks past the touch, mean ``sweep_ticks``) published as ``l2Book``
  (5 levels with ``fast: true``, else 20), ``bbo`` when the touch changes, and ``trades``;
- ``post`` requests of type ``info``: ``meta``, ``clearinghouseState``, ``openOrders``,
  ``orderStatus``, ``userFees`` (the account's rates: change ``maker_fee_rate`` /
  ``taker_fee_rate`` and the next read says so); anything else answers an ``error`` payload
  (Hyperliquid II adds actions);
- ``activeAssetCtx`` (GB ``WsActiveAssetCtx``: ``{coin, ctx: PerpsAssetCtx}``, values as the
  decimal strings of the docs' ``metaAndAssetCtxs`` example): sent on subscribe and whenever
  ``set_funding_rate`` changes the hourly rate;
- the venue's limits, counted: at most 10 connections at once and 30 new ones a minute
  (beyond, the handshake is refused), 2000 client messages a minute (beyond, the socket is
  closed), 100 posts in flight;
- faults on demand: ``drop(clean=...)`` closes every socket (code 1000, or a reset),
  ``stall()`` goes half-open (no pongs, no data, socket left open), ``inject(text)`` sends any
  frame (malformed JSON, unknown channels or statuses), ``slow_s`` delays every frame.

Everything it saw is counted in ``FakeStats`` so tests can check the client's manners.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from collections import deque
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

GREETING = "Websocket connection established."


class FakeStats:
    def __init__(self) -> None:
        self.connections = 0
        self.refused = 0
        self.open_now = 0
        self.max_open = 0
        self.max_new_per_min = 0
        self.messages = 0
        self.max_messages_per_min = 0
        self.pings = 0
        self.subscribes = 0
        self.posts = 0
        self.max_posts_in_flight = 0
        self.idle_closes = 0
        self.frames_sent = 0


class _Conn:
    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.subs: list[dict[str, Any]] = []
        self.stalled = False


class FakeHyperliquid:
    """``async with FakeHyperliquid() as fake: fake.url``"""

    def __init__(
        self,
        *,
        coin: str = "BTC",
        mid: float = 100_000.0,
        tick: float = 1.0,
        sz_decimals: int = 5,
        book_interval_s: float = 0.05,
        trade_rate_per_s: float = 20.0,
        sweep_ticks: float = 1.5,
        buy_share: float = 0.5,
        account_value: float = 25_000.0,
        idle_timeout_s: float = 60.0,
        greeting: bool = True,
        max_open: int = 10,
        max_new_per_min: int = 30,
        max_messages_per_min: int = 2000,
        seed: int = 1,
        port: int = 0,
        maker_fee_rate: float = 0.00015,
        taker_fee_rate: float = 0.00045,
        funding_rate: float = 0.0000125,
    ) -> None:
        """``maker_fee_rate`` / ``taker_fee_rate``: the watched account's rates (fractions;
        the base perps tier is 0.015 % / 0.045 %), answered by ``userFees`` and charged on
        the exchange fake's fills."""
        self.maker_fee_rate = maker_fee_rate
        self.taker_fee_rate = taker_fee_rate
        self.funding_rate = funding_rate
        """The hourly funding rate ``activeAssetCtx`` shows (Hyperliquid's interest rate
        alone, 0.00125 % an hour, by default)."""
        self.coin = coin
        self.asset_id = 100_000 + HIP3_DEX_INDEX * 10_000 + 1 if ":" in coin else 1
        """The market's asset id: its index in the main meta (ETH is 0), or for a builder
        dex's ``dex:COIN`` the HIP-3 rule ``100000 + dex index * 10000 + index in meta``."""
        self.tick = tick
        self.sz_decimals = sz_decimals
        self.mid_ticks = round(mid / tick)
        self.book_interval_s = book_interval_s
        self.trade_rate_per_s = trade_rate_per_s
        self.sweep_ticks = sweep_ticks
        self.buy_share = buy_share
        """Share of trades with a buy aggressor: one-sided flow drives a maker to its limit."""
        self.account_value = account_value
        self.idle_timeout_s = idle_timeout_s
        self.greeting = greeting
        self.max_open = max_open
        self.max_new_per_min = max_new_per_min
        self.max_messages_per_min = max_messages_per_min
        self.slow_s = 0.0
        self.post_delay_s = 0.0
        self.drop_on_connect = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = FakeStats()
        self.rng = random.Random(seed)
        self.conns: set[_Conn] = set()
        self._new_times: deque[float] = deque()
        self._msg_times: deque[float] = deque()
        self._server: Server | None = None
        self._market: asyncio.Task[None] | None = None
        self._last_bbo: tuple[int, int] | None = None
        self._tid = 0
        self.port = port
        """The port to listen on (0: any free one); the one taken once started."""

    # ----- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> None:
        self._server = await serve(
            self._handler, "127.0.0.1", self.port, process_request=self._admit, ping_interval=None
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._market = asyncio.create_task(self._run_market())

    async def stop(self) -> None:
        if self._market is not None:
            self._market.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._market
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> FakeHyperliquid:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----- faults -------------------------------------------------------------------------

    async def drop(self, *, clean: bool) -> None:
        """Close every connection: a clean close (1000) or a reset with no closing handshake."""
        for conn in list(self.conns):
            if clean:
                await conn.ws.close(1000, "restart")
            else:
                conn.ws.transport.abort()

    def stall(self, on: bool = True) -> None:
        """Half-open: keep the sockets but answer nothing and send nothing."""
        for conn in self.conns:
            conn.stalled = on

    async def inject(self, text: str | bytes) -> None:
        """Send a frame as it is (bytes go as a binary frame: invalid UTF-8 included)."""
        for conn in list(self.conns):
            await self._send(conn, text)

    # ----- connection handling ------------------------------------------------------------

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        now = time.monotonic()
        while self._new_times and self._new_times[0] <= now - 60.0:
            self._new_times.popleft()
        if self.stats.open_now >= self.max_open or len(self._new_times) >= self.max_new_per_min:
            self.stats.refused += 1
            return connection.respond(429, "Too many connections\n")
        self._new_times.append(now)
        self.stats.max_new_per_min = max(self.stats.max_new_per_min, len(self._new_times))
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        conn = _Conn(ws)
        stats = self.stats
        stats.connections += 1
        stats.open_now += 1
        stats.max_open = max(stats.max_open, stats.open_now)
        self.conns.add(conn)
        try:
            if self.drop_on_connect:
                await ws.close(1000, "going away")
                return
            if self.greeting:
                await ws.send(GREETING)
            while True:
                try:
                    async with asyncio.timeout(self.idle_timeout_s):
                        text = await ws.recv()
                except TimeoutError:
                    stats.idle_closes += 1
                    await ws.close(1000, "idle")
                    return
                if not self._count_message():
                    await ws.close(1008, "too many messages")
                    return
                await self._on_message(conn, text)
        except ConnectionClosed:
            return
        finally:
            self.conns.discard(conn)
            stats.open_now -= 1

    def _count_message(self) -> bool:
        now = time.monotonic()
        times = self._msg_times
        while times and times[0] <= now - 60.0:
            times.popleft()
        times.append(now)
        self.stats.messages += 1
        self.stats.max_messages_per_min = max(self.stats.max_messages_per_min, len(times))
        return len(times) <= self.max_messages_per_min

    async def _on_message(self, conn: _Conn, text: str | bytes) -> None:
        try:
            msg = json.loads(text)
            method = msg["method"]
        except (ValueError, KeyError, TypeError):
            await self._send(conn, self._frame("error", f"Invalid message: {str(text)[:100]}"))
            return
        if method == "ping":
            self.stats.pings += 1
            if not conn.stalled:
                await self._send(conn, json.dumps({"channel": "pong"}))
        elif method == "subscribe":
            self.stats.subscribes += 1
            sub = msg.get("subscription") or {}
            if sub in conn.subs:
                await self._send(
                    conn, self._frame("error", f"Already subscribed: {json.dumps(sub)}")
                )
                return
            conn.subs.append(sub)
            echo = {**sub}
            if sub.get("type") == "l2Book":
                echo.setdefault("nSigFigs", None)  # the server adds fields to its echo
            await self._send(
                conn,
                self._frame("subscriptionResponse", {"method": "subscribe", "subscription": echo}),
            )
            await self.on_subscribed(conn, sub)
        elif method == "post":
            self.stats.posts += 1
            task = asyncio.create_task(self._post(conn, msg))
            self._tasks.add(task)  # answered concurrently, possibly out of order
            task.add_done_callback(self._tasks.discard)
        else:
            await self._send(conn, self._frame("error", f"Unknown method: {method}"))

    async def _post(self, conn: _Conn, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        self._in_flight += 1
        self.stats.max_posts_in_flight = max(self.stats.max_posts_in_flight, self._in_flight)
        try:
            if self._in_flight > 100:
                await self._send(
                    conn, self._frame("error", f"too many pending post requests id={rid}")
                )
                return
            if self.post_delay_s:
                await asyncio.sleep(self.post_delay_s)
            request = msg.get("request") or {}
            kind = request.get("type")
            payload = request.get("payload") or {}
            if kind == "info":
                data = self.info(payload)
                answer = {"type": "info", "payload": {"type": payload.get("type"), "data": data}}
            elif kind == "action":
                answer = {"type": "action", "payload": await self.action(payload)}
            else:
                answer = {"type": "error", "payload": f"unsupported request type {kind!r}"}
            await self.reply(conn, self._frame("post", {"id": rid, "response": answer}))
        finally:
            self._in_flight -= 1

    # ----- hooks for the trading fake (fake_exchange.py) -----------------------------------

    async def on_subscribed(self, conn: _Conn, sub: dict[str, Any]) -> None:
        """After the ack: the first message of a snapshot channel."""
        if sub.get("type") == "l2Book":
            await self._send(conn, self._book_frame(sub))
        elif sub.get("type") == "activeAssetCtx" and sub.get("coin") == self.coin:
            await self._send(conn, self._ctx_frame())

    async def set_funding_rate(self, rate: float) -> None:
        """A new hourly rate, pushed to every ``activeAssetCtx`` subscriber."""
        self.funding_rate = rate
        await self._broadcast("activeAssetCtx", self._ctx_frame())

    def _ctx_frame(self) -> str:
        mid = self._px(self.mid_ticks)
        ctx = {
            "dayNtlVlm": "1169046.29406",
            "prevDayPx": mid,
            "markPx": mid,
            "midPx": mid,
            "funding": _fmt(self.funding_rate) if self.funding_rate else "0.0",
            "openInterest": "688.11",
            "oraclePx": mid,
            "premium": "0.0",
            "impactPxs": [self._px(self.mid_ticks - 1), self._px(self.mid_ticks + 1)],
        }
        return self._frame("activeAssetCtx", {"coin": self.coin, "ctx": ctx})

    async def action(self, payload: dict[str, Any]) -> Any:
        """The answer to a signed action (the trading fake commits them in blocks)."""
        return {"status": "err", "response": "this fake takes no actions"}

    async def reply(self, conn: _Conn, frame: str) -> None:
        """A ``post`` answer (the trading fake delays and reorders these)."""
        await self._send(conn, frame)

    async def on_trade(self, trade: dict[str, Any]) -> None:
        """A public trade printed (the trading fake matches our orders against it)."""

    async def on_tick(self) -> None:
        """Every book interval, after the touch moved."""

    def info(self, payload: dict[str, Any]) -> Any:
        kind = payload.get("type")
        dex = self.coin.partition(":")[0] if ":" in self.coin else None
        if kind == "meta" and payload.get("dex"):
            # A builder dex's meta: names "dex:COIN"; ours is second (index 1).
            if payload.get("dex") != dex:
                return None
            return {
                "universe": [
                    {"name": f"{dex}:OTHER", "szDecimals": 2, "maxLeverage": 5},
                    {
                        "name": self.coin,
                        "szDecimals": self.sz_decimals,
                        "maxLeverage": 10,
                        "onlyIsolated": True,
                    },
                ]
            }
        if kind == "meta":
            main = [{"name": "ETH", "szDecimals": 4, "maxLeverage": 25}]
            if dex is None:
                main.append({"name": self.coin, "szDecimals": self.sz_decimals, "maxLeverage": 40})
            return {"universe": main}
        if kind == "perpDexs":
            # Hyperliquid's own dex is the null first entry; ours is third (index 2).
            return [None, _perp_dex("abc", "1.0"), _perp_dex(dex or "xyz", "1.0")]
        if kind == "clearinghouseState":
            value = f"{self.account_value:.2f}"
            summary = {
                "accountValue": value,
                "totalNtlPos": "0.0",
                "totalRawUsd": value,
                "totalMarginUsed": "0.0",
            }
            return {
                "assetPositions": [],
                "marginSummary": summary,
                "crossMarginSummary": summary,
                "withdrawable": value,
                "time": int(time.time() * 1000),
            }
        if kind == "userFees":
            # The venue's shape (info userFees): the account's rates and the schedule.
            return {
                "dailyUserVlm": [],
                "feeSchedule": {
                    "cross": "0.00045",
                    "add": "0.00015",
                    "tiers": {
                        "vip": [
                            {"ntlCutoff": cut, "cross": cross, "add": add}
                            for cut, cross, add in (
                                ("5000000.0", "0.0004", "0.00012"),
                                ("25000000.0", "0.00035", "0.00008"),
                                ("100000000.0", "0.0003", "0.00004"),
                                ("500000000.0", "0.00028", "0.0"),
                            )
                        ],
                        "mm": [
                            {"makerFractionCutoff": cut, "add": add}
                            for cut, add in (
                                ("0.005", "-0.00001"),
                                ("0.015", "-0.00002"),
                                ("0.03", "-0.00003"),
                            )
                        ],
                    },
                },
                "userCrossRate": _fmt(self.taker_fee_rate),
                "userAddRate": _fmt(self.maker_fee_rate),
                "activeReferralDiscount": "0.0",
            }
        if kind == "openOrders":
            return []
        if kind == "orderStatus":
            return {"status": "unknownOid"}
        return None

    # ----- market ------------------------------------------------------------------------

    async def _run_market(self) -> None:
        rng = self.rng
        next_trade = time.monotonic() + rng.expovariate(self.trade_rate_per_s)
        next_book = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_book:
                next_book = now + self.book_interval_s
                if rng.random() < 0.3:
                    self.mid_ticks += rng.choice((-1, 1))
                for conn in list(self.conns):
                    for sub in conn.subs:
                        if sub.get("type") == "l2Book" and sub.get("coin") == self.coin:
                            await self._send(conn, self._book_frame(sub))
                await self._publish_bbo()
                await self.on_tick()
            if now >= next_trade:
                next_trade = now + rng.expovariate(self.trade_rate_per_s)
                await self._publish_trade()
            await asyncio.sleep(max(0.0, min(next_book, next_trade) - time.monotonic()))

    def _touch(self) -> tuple[int, int]:
        return self.mid_ticks - 1, self.mid_ticks + 1

    def _px(self, ticks: int) -> str:
        return _fmt(ticks * self.tick)

    def _book_frame(self, sub: dict[str, Any]) -> str:
        bid, ask = self._touch()
        depth = 5 if sub.get("fast") else 20
        rng = self.rng

        def level(ticks: int) -> dict[str, Any]:
            return {
                "px": self._px(ticks),
                "sz": _fmt(round(rng.uniform(0.05, 2.0), 5)),
                "n": rng.randint(1, 9),
            }

        data = {
            "coin": self.coin,
            "time": int(time.time() * 1000),
            "levels": [
                [level(bid - i) for i in range(depth)],
                [level(ask + i) for i in range(depth)],
            ],
        }
        return self._frame("l2Book", data)

    async def _publish_bbo(self) -> None:
        touch = self._touch()
        if touch == self._last_bbo:
            return
        self._last_bbo = touch
        data = {
            "coin": self.coin,
            "time": int(time.time() * 1000),
            "bbo": [
                {"px": self._px(touch[0]), "sz": "0.5", "n": 2},
                {"px": self._px(touch[1]), "sz": "0.5", "n": 2},
            ],
        }
        await self._broadcast("bbo", self._frame("bbo", data))

    async def _publish_trade(self) -> None:
        rng = self.rng
        buy = rng.random() < self.buy_share
        bid, ask = self._touch()
        sweep = int(rng.expovariate(1 / self.sweep_ticks))  # ticks past the touch
        px = ask + sweep if buy else bid - sweep
        self._tid += 1
        trade = {
            "coin": self.coin,
            "side": "B" if buy else "A",
            "px": self._px(px),
            "sz": _fmt(round(rng.expovariate(1 / 0.2) + 0.001, 5)),
            "time": int(time.time() * 1000),
            "hash": "0x" + f"{self._tid:064x}",
            "tid": self._tid,
            "users": ["0x" + "1" * 40, "0x" + "2" * 40],
        }
        await self._broadcast("trades", self._frame("trades", [trade]))
        await self.on_trade(trade)

    async def _broadcast(self, kind: str, frame: str) -> None:
        for conn in list(self.conns):
            if any(s.get("type") == kind and s.get("coin") == self.coin for s in conn.subs):
                await self._send(conn, frame)

    @staticmethod
    def _frame(channel: str, data: Any) -> str:
        return json.dumps({"channel": channel, "data": data}, separators=(",", ":"))

    async def _send(self, conn: _Conn, text: str | bytes) -> None:
        if conn.stalled:
            return
        if self.slow_s:
            await asyncio.sleep(self.slow_s)
        with contextlib.suppress(ConnectionClosed):
            await conn.ws.send(text)
            self.stats.frames_sent += 1


HIP3_DEX_INDEX = 2
"""Where the fake's builder dex sits in ``perpDexs`` (its market is index 1 of its meta)."""


def _perp_dex(name: str, fee_scale: str) -> dict[str, Any]:
    """A ``perpDexs`` entry in the venue's shape."""
    return {
        "name": name,
        "fullName": f"{name} test dex",
        "deployer": "0x" + "de" * 20,
        "oracleUpdater": "0x" + "0a" * 20,
        "feeRecipient": None,
        "assetToStreamingOiCap": [],
        "subDeployers": [],
        "deployerFeeScale": fee_scale,
        "lastDeployerFeeScaleChangeTime": "1970-01-01T00:00:00",
        "assetToFundingMultiplier": [],
    }


def _fmt(x: float) -> str:
    """Hyperliquid-style decimal text (``105055.0``, ``0.00219``)."""
    if not math.isfinite(x):
        raise ValueError(x)
    text = f"{x:.8f}".rstrip("0")
    return text + "0" if text.endswith(".") else text
