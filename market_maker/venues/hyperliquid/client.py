"""One Hyperliquid websocket for everything: subscriptions, heartbeats, info requests.

``HyperliquidClient.run()`` keeps a connection alive until ``close()``:

- connect (at most ``max_new_connections_per_min`` new connections a minute; the venue allows
  30 and 10 at a time, we use one), subscribe and wait for every subscription's ack;
- ping every ``ping_interval_s`` (30 s), and at once when nothing at all has arrived for
  ``silence_ping_s`` (5 s; books alone come every 0.5 s); drop the socket when no pong comes
  within ``pong_timeout_s`` (10 s): a half-open socket is found within 15 s, well before the
  kill switch's 30 s stale-data halt;
- on any loss (a clean close included: the server closes idle sockets after 60 s and restarts
  without notice) report the disconnect, wait a jittered exponential backoff (0.25 s doubling
  to 30 s, reset once a connection is subscribed) and start again;
- every message sent passes a sliding-window budget (``max_messages_per_min``, 2000 at the
  venue, across subscriptions, pings and posts).

``info(payload)`` sends a ``post`` of type ``info`` on the same socket (no REST) and awaits the
answer naming its id; at most ``max_in_flight_posts`` wait at once, and a connection lost
with requests in flight fails them with ``VenueError`` (their outcome is unknown).

Frames reach the owner through callbacks, in the order received: ``on_frame(ns, text)`` with
the raw text (for recording) and ``on_message(ns, channel, message)`` with the decoded wire
type; ``on_status(ns, connected)`` when the connection becomes usable or stops being so.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from market_maker.errors import VenueError
from market_maker.log import get_logger
from market_maker.venues.hyperliquid.messages import (
    FrameDecoder,
    Message,
    PostResponse,
    SubscriptionResponse,
    WsError,
)

__all__ = ["MAINNET_WS", "TESTNET_WS", "ClientConfig", "ClientStats", "HyperliquidClient"]

MAINNET_WS = "wss://api.hyperliquid.xyz/ws"
TESTNET_WS = "wss://api.hyperliquid-testnet.xyz/ws"

_PING = msgspec.json.encode({"method": "ping"}).decode()
T = TypeVar("T")


class _InfoPayload(msgspec.Struct):
    data: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))
    type: str | None = None


_info_payload = msgspec.json.Decoder(_InfoPayload)


class ClientConfig(msgspec.Struct, frozen=True, kw_only=True):
    url: str = MAINNET_WS
    ping_interval_s: float = 30.0
    pong_timeout_s: float = 10.0
    silence_ping_s: float = 5.0
    """No frame at all for this long (books come every 0.5 s): ping now, not at the next
    interval, so a half-open socket is found in ``silence_ping_s + pong_timeout_s``."""
    backoff_min_s: float = 0.25
    backoff_max_s: float = 30.0
    subscribe_timeout_s: float = 10.0
    open_timeout_s: float = 10.0
    post_timeout_s: float = 10.0
    max_new_connections_per_min: int = 30
    max_messages_per_min: int = 2000
    max_in_flight_posts: int = 100


class ClientStats(msgspec.Struct, kw_only=True):
    connects: int = 0
    """Connections opened and subscribed."""
    connect_failures: int = 0
    disconnects: int = 0
    clean_closes: int = 0
    pings: int = 0
    pongs: int = 0
    pong_timeouts: int = 0
    subscribe_timeouts: int = 0
    messages_sent: int = 0
    posts: int = 0
    post_failures: int = 0
    server_errors: int = 0
    last_error: str = ""


class _Window:
    """At most ``limit`` events in any ``window_s``: ``acquire`` waits for room."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque()

    async def acquire(self) -> None:
        times = self._times
        while True:
            now = time.monotonic()
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if len(times) < self.limit:
                times.append(now)
                return
            await asyncio.sleep(times[0] + self.window_s - now)


def _matches(request: dict[str, Any], echo: dict[str, Any]) -> bool:
    """The server's echo may add fields: match by subset."""
    return all(echo.get(k) == v for k, v in request.items())


class HyperliquidClient:
    """A self-healing websocket to Hyperliquid (see the module docstring)."""

    def __init__(
        self,
        config: ClientConfig,
        subscriptions: Sequence[dict[str, Any]],
        *,
        on_message: Callable[[int, str, Message], None],
        on_status: Callable[[int, bool], None],
        on_frame: Callable[[int, str], None] | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.subscriptions = [dict(s) for s in subscriptions]
        self.on_message = on_message
        self.on_status = on_status
        self.on_frame = on_frame
        self.decoder = FrameDecoder()
        self.stats = ClientStats()
        self.connected = False
        self._rng = random.Random(seed)
        self._log = get_logger("hyperliquid")
        self._ws: ClientConnection | None = None
        self._closing = False
        self._connections = _Window(config.max_new_connections_per_min, 60.0)
        self._messages = _Window(config.max_messages_per_min, 60.0)
        self._posts = asyncio.Semaphore(config.max_in_flight_posts)
        self._pending: dict[int, asyncio.Future[PostResponse]] = {}
        self._next_id = 0
        self._pong = asyncio.Event()
        self._acked: list[bool] = []
        self._all_acked = asyncio.Event()
        self._ready = asyncio.Event()
        self._session_ok = False
        self._last_frame = time.monotonic()

    # ----- public ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and stay connected until ``close()``."""
        attempt = 0
        while not self._closing:
            await self._connections.acquire()
            self._session_ok = False
            try:
                await self._session()
            except (OSError, WebSocketException, TimeoutError) as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"[:200]
            finally:
                self._lost()
            if self._closing:
                break
            if self._session_ok:
                attempt = 0  # a healthy connection ended: start the backoff again
            else:
                attempt += 1
                self.stats.connect_failures += 1
            cfg = self.config
            delay = min(cfg.backoff_max_s, cfg.backoff_min_s * 2.0**attempt)
            delay *= 0.5 + 0.5 * self._rng.random()  # jitter: clients do not reconnect in step
            self._log.warning(
                "reconnecting", in_s=round(delay, 3), attempt=attempt, error=self.stats.last_error
            )
            await asyncio.sleep(delay)

    async def wait_ready(self, timeout_s: float) -> None:
        """Until the connection is subscribed (VenueError after ``timeout_s``)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()
        except TimeoutError:
            raise VenueError(
                f"no connection to {self.config.url} within {timeout_s:g} s"
                + (f" ({self.stats.last_error})" if self.stats.last_error else "")
            ) from None

    async def info(self, payload: dict[str, Any], as_type: type[T]) -> T:
        """An info request over the websocket, its answer's ``data`` decoded as ``as_type``."""
        response = await self.post("info", payload)
        body = response.response
        what = payload.get("type")
        if body.type != "info":
            raise VenueError(f"info {what}: {bytes(body.payload)[:200].decode(errors='replace')}")
        try:
            return msgspec.json.decode(_info_payload.decode(body.payload).data, type=as_type)
        except msgspec.DecodeError as exc:
            raise VenueError(f"info {what}: unexpected answer ({exc})") from None

    async def post(
        self, kind: str, payload: dict[str, Any], *, timeout_s: float | None = None
    ) -> PostResponse:
        """Send ``{"method": "post", "id", "request": {"type": kind, "payload"}}``, await its
        answer (at most ``timeout_s``, default ``post_timeout_s``). VenueError when not
        connected, on timeout, or when the connection is lost."""
        timeout = self.config.post_timeout_s if timeout_s is None else timeout_s
        rid = 0
        try:
            # The whole post within the timeout: waiting for a free post slot and for the
            # socket to take the frame (a peer that stops reading holds ``ws.send``) as well
            # as the answer. Only the answer was bounded once, and a send held by a full
            # buffer kept the slot, so every later post, the shutdown's too, waited forever.
            async with asyncio.timeout(timeout), self._posts:
                ws = self._ws
                if ws is None or not self.connected:
                    raise VenueError("not connected")
                self._next_id += 1
                rid = self._next_id
                fut: asyncio.Future[PostResponse] = asyncio.get_running_loop().create_future()
                self._pending[rid] = fut
                self.stats.posts += 1
                await self._send(
                    ws, {"method": "post", "id": rid, "request": {"type": kind, "payload": payload}}
                )
                return await fut
        except TimeoutError:
            self.stats.post_failures += 1
            raise VenueError(f"post {rid} unanswered after {timeout:g} s") from None
        except (WebSocketException, OSError) as exc:
            self.stats.post_failures += 1
            raise VenueError(f"post {rid}: connection lost ({exc})") from None
        finally:
            self._pending.pop(rid, None)

    async def close(self) -> None:
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await ws.close()

    # ----- one connection -------------------------------------------------------------------

    async def _session(self) -> None:
        """One connection from open to loss (``_session_ok`` once it got subscribed)."""
        cfg = self.config
        async with connect(
            cfg.url,
            open_timeout=cfg.open_timeout_s,
            ping_interval=None,  # Hyperliquid's own {"method": "ping"} below
            close_timeout=2.0,
            proxy=None,
            max_size=16 * 2**20,
        ) as ws:
            self._ws = ws
            reader = asyncio.create_task(self._read(ws))
            try:
                self._acked = [False] * len(self.subscriptions)
                self._all_acked.clear()
                for sub in self.subscriptions:
                    await self._send(ws, {"method": "subscribe", "subscription": sub})
                acked = asyncio.create_task(self._all_acked.wait())
                done, _ = await asyncio.wait(
                    {reader, acked}, timeout=cfg.subscribe_timeout_s, return_when="FIRST_COMPLETED"
                )
                acked.cancel()
                if not self._all_acked.is_set():
                    if reader in done:
                        reader.result()  # the server went away first: raise what it said
                    else:
                        self.stats.subscribe_timeouts += 1
                        self.stats.last_error = "subscriptions not acknowledged"
                    return
                self._session_ok = True
                self._last_frame = time.monotonic()
                self.stats.connects += 1
                self.connected = True
                self._ready.set()
                self.on_status(time.time_ns(), True)
                self._log.info("connected", url=cfg.url, subscriptions=len(self.subscriptions))
                pinger = asyncio.create_task(self._keepalive(ws))
                try:
                    await reader
                finally:
                    pinger.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await pinger
            finally:
                if not reader.done():
                    reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    async def _read(self, ws: ClientConnection) -> None:
        """Every frame until the connection ends (a clean close returns, an abrupt one raises)."""
        decode = self.decoder.decode
        on_frame = self.on_frame
        on_message = self.on_message
        async for frame in ws:
            ns = time.time_ns()
            self._last_frame = time.monotonic()
            text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
            if on_frame is not None:
                on_frame(ns, text)
            got = decode(text)
            if got is None:
                continue
            channel, message = got
            if channel == "pong":
                self.stats.pongs += 1
                self._pong.set()
            elif channel == "post":
                assert isinstance(message, PostResponse)
                fut = self._pending.get(message.id)
                if fut is not None and not fut.done():
                    fut.set_result(message)
            elif channel == "subscriptionResponse":
                assert isinstance(message, SubscriptionResponse)
                self._on_ack(message)
            elif channel == "error":
                assert isinstance(message, WsError)
                self.stats.server_errors += 1
                self.stats.last_error = message.text[:200]
                self._log.warning("server_error", text=message.text[:200])
            else:
                on_message(ns, channel, message)
        self.stats.clean_closes += 1

    def _on_ack(self, ack: SubscriptionResponse) -> None:
        if ack.method != "subscribe":
            return
        for i, sub in enumerate(self.subscriptions):
            if not self._acked[i] and _matches(sub, ack.subscription):
                self._acked[i] = True
                break
        if all(self._acked):
            self._all_acked.set()

    async def _keepalive(self, ws: ClientConnection) -> None:
        cfg = self.config
        next_ping = time.monotonic() + cfg.ping_interval_s
        while True:
            now = time.monotonic()
            quiet_at = self._last_frame + cfg.silence_ping_s
            if now < next_ping and now < quiet_at:
                await asyncio.sleep(min(next_ping, quiet_at) - now)
                continue
            self._pong.clear()
            self.stats.pings += 1
            await self._send(ws, _PING)
            try:
                async with asyncio.timeout(cfg.pong_timeout_s):
                    await self._pong.wait()
            except TimeoutError:
                # Half-open: the socket looks fine and nothing comes. Drop it without the
                # closing handshake (which would wait on the dead peer too).
                self.stats.pong_timeouts += 1
                self.stats.last_error = f"no pong within {cfg.pong_timeout_s:g} s"
                self._log.warning("stalled", no_pong_s=cfg.pong_timeout_s)
                ws.transport.abort()
                return
            next_ping = time.monotonic() + cfg.ping_interval_s

    async def _send(self, ws: ClientConnection, message: dict[str, Any] | str) -> None:
        await self._messages.acquire()
        text = message if isinstance(message, str) else msgspec.json.encode(message).decode()
        await ws.send(text)
        self.stats.messages_sent += 1

    def _lost(self) -> None:
        self._ws = None
        self._ready.clear()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(VenueError("connection lost with the request in flight"))
        if self.connected:
            self.connected = False
            self.stats.disconnects += 1
            self.on_status(time.time_ns(), False)
