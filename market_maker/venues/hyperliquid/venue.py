"""Live trading on Hyperliquid: the engine's actions as signed ``post`` actions on one websocket.

``HyperliquidVenue`` is a ``Venue``. Per call of ``submit`` it sends at most one signed action
of each kind, in this order: ``cancelByCloid`` for every cancel (``cancel`` by oid for orders
an earlier process left without a cloid), ``batchModify`` for every re-price (cancel-replace:
the new leg carries the engine's fresh cloid), one ``order`` batch of post-only (``Alo``)
orders, one of immediate-or-cancel (``Ioc``) escalations apart from it; a snapshot the engine
asked for goes out before all of them (its ``info`` queries are answered at once from committed
state, the actions wait for a block). Nothing waits on the network:
answers come back later as events.

What comes back, and how it maps:

- post replies: one status per order, matched to the action's ``request_id`` (``resting`` ->
  ACCEPTED, an error -> REJECTED with the venue's text, ``Order was never placed, already
  canceled, or filled`` / ``Cannot modify canceled or filled order`` -> NOT_FOUND, ``Error
  placing new order during modify`` -> CANCELED: the old leg is gone); a refusal of the whole
  action answers every request in it. A post that times out or dies with the connection has
  no answer: the engine's settle timeout asks for a snapshot, which settles it.
- an ``order`` or ``batchModify`` post with no answer (``action_timeout_s``, or the connection
  lost with it in flight) is voided: a signed ``noop`` with the same nonce goes out (on the
  next connection after a drop). The venue takes a nonce once, so a ``noop`` answered ``ok``
  proves the original never executes: every request in it is answered REJECTED
  (``nonces_voided``). A ``noop`` refused as a duplicate nonce came too late (the original
  committed; ``voids_too_late``), and one with no answer proves nothing (``voids_unanswered``):
  no answer is pushed and the engine keeps the requests' worst case until a snapshot settles
  them. A snapshot asked for while a ``noop`` is on its way waits for its answer, so it shows
  what became of the original. Cancels are never voided (a late cancel is still wanted).
- ``orderUpdates``: venue-side facts about an order, sent as unsolicited updates (request id
  ``UPDATE``) with ``filled_size = origSz - sz``: ``open``, ``filled`` and every cancel status
  (CANCELED), every rejection (REJECTED); an unknown status goes through as its text, which
  the engine counts and reconciles (never a crash, never freed exposure).
- ``userFills``: each fill once, keyed by (``tid``, ``oid``); a subscription snapshot's fills
  older than this process are history (already in the position) and are skipped.
- ``userFundings``: each funding payment once (``FundingPayment``, ``usdc`` received, keyed by
  its time and coin), a snapshot's older than this process skipped as history (already in the
  account value). The rate itself comes with the market data (``activeAssetCtx``).
- ``userFees`` is read again with every account sync: new rates (a tier or rebate the venue
  moved the account to, times a HIP-3 dex's fee scale) reach the engine as a ``FeeUpdate``.
- snapshots: ``openOrders``, ``clearinghouseState``, ``openOrders`` again, adopted only when
  the two order reads agree (no fill between them: the position and each order's fill are of
  one instant), read again otherwise; stamped with the API server's ``time``; also an
  ``AccountUpdate`` (account value, withdrawable, position) every ``account_interval_s``.

The dead man's switch: while connected, ``scheduleCancel`` is kept ``dms_ahead_s`` ahead,
refreshed every ``dms_refresh_s``; an account the venue refuses it to (under 1,000,000 USD
traded) is told once and relies on the engine's own stale-data and disconnect pauses, which
cancel every quote, and on ``LoopWatchdog``: a thread that cancels every order of ours over a
connection of its own when the event loop stops beating for ``stall_s`` (5 s).

Requests also pass a local copy of the address budget (1 request per USDC
traded plus 10,000; one per 10 s once spent): new orders are refused here, before the venue
would, while cancels always go. It is read from the venue (``userRateLimit``: ``nRequestsCap
- nRequestsUsed + nRequestsSurplus``) on every connection, the first and each reconnect, so a
restarted process does not assume a full budget; new orders wait for that read (at most
``post_timeout_s``). A read that fails is counted (``budget_read_failures``) and the local
copy is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

import msgspec

from market_maker.config import FeesConfig, InstrumentConfig
from market_maker.errors import VenueError
from market_maker.fees import rates_from_user_fees
from market_maker.log import get_logger
from market_maker.model import (
    AccountUpdate,
    AckStatus,
    Action,
    Cancel,
    Event,
    FeeUpdate,
    Fill,
    FundingPayment,
    Instrument,
    Modify,
    OpenOrder,
    OrderAck,
    Place,
    RequestSnapshot,
    Side,
    VenueSnapshot,
)
from market_maker.venues.base import HandOverClock
from market_maker.venues.hyperliquid import wire
from market_maker.venues.hyperliquid.client import ClientConfig
from market_maker.venues.hyperliquid.feed import HyperliquidFeed, VenueInfo, scaled_fee
from market_maker.venues.hyperliquid.messages import (
    ClearinghouseState,
    Message,
    OpenOrderWire,
    UserFees,
    UserRateLimit,
    WsFill,
    WsOrder,
    WsUserFills,
    WsUserFunding,
    WsUserFundings,
    finite,
    order_status,
)
from market_maker.venues.hyperliquid.signing import NonceSource, Signer

__all__ = ["UPDATE", "AddressBudget", "HyperliquidVenue", "LiveStats", "LoopWatchdog"]

UPDATE = -1
"""``request_id`` of an order update the venue pushed on its own: never taken as the answer to
one of our requests (a modify's old leg reports ``canceled`` while the modify succeeded)."""

_NOT_FOUND = ("Order was never placed", "Cannot modify canceled or filled order")
_MODIFY_HALF_DONE = "Error placing new order during modify"
_NO_MATCH = "Order could not immediately match"
_DMS_GATE = "Cannot set scheduled cancel time"
_DUPLICATE_NONCE = "Invalid nonce: duplicate nonce"
_VOIDED = "voided: a noop took its nonce before it reached a block"
_VOIDABLE = ("order", "batchModify")
"""Actions voided when unanswered (a late place or modify adds risk; a late cancel does not)."""
_SEEN_FILLS = 20_000
_GONE = AckStatus.NOT_FOUND
_REFUSED = AckStatus.REJECTED


K = TypeVar("K")
V = TypeVar("V")


class _Recent(OrderedDict[K, V]):
    """A mapping that forgets its oldest entries beyond ``_SEEN_FILLS``."""

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        if len(self) > _SEEN_FILLS:
            self.popitem(last=False)


class LiveStats(msgspec.Struct, kw_only=True):
    actions: int = 0
    action_failures: int = 0
    """Posts with no answer (timeout, connection lost): the engine reconciles."""
    refused_actions: int = 0
    refused_locally: int = 0
    order_updates: int = 0
    fills: int = 0
    duplicate_fills: int = 0
    history_fills: int = 0
    snapshots: int = 0
    snapshot_retries: int = 0
    """Snapshots whose two reads of the open orders differed: read again."""
    torn_snapshots: int = 0
    """Snapshots given up after every read differed: the engine asks again."""
    dms_refreshes: int = 0
    dms_available: bool = True
    last_refusal: str = ""
    voids_sent: int = 0
    """``noop`` actions sent with the nonce of an unanswered order or modify."""
    nonces_voided: int = 0
    """... answered ``ok``: the original can never execute, its requests answered REJECTED."""
    voids_too_late: int = 0
    """... refused as a duplicate nonce: the original had committed (a snapshot settles it)."""
    voids_unanswered: int = 0
    """... with no answer or another refusal: proves nothing (a snapshot settles it)."""
    budget_reads: int = 0
    """Address budgets read from the venue (``userRateLimit``), one per connection."""
    budget_read_failures: int = 0
    fundings: int = 0
    """Funding payments passed on (``userFundings``)."""
    history_fundings: int = 0
    duplicate_fundings: int = 0
    fee_reads: int = 0
    """``userFees`` read with the account syncs."""
    fee_changes: int = 0
    fee_read_failures: int = 0


_SNAPSHOT_TRIES = 3


def _same_orders(a: Sequence[OpenOrderWire], b: Sequence[OpenOrderWire]) -> bool:
    """The same orders with the same remaining sizes: nothing of ours traded in between."""
    return sorted((o.oid, o.sz) for o in a) == sorted((o.oid, o.sz) for o in b)


class AddressBudget:
    """Hyperliquid's per-address request budget, tracked locally: 10,000 plus one per USDC
    traded; once spent, one request per 10 s."""

    def __init__(self, initial: float = 10_000.0, clock: Any = time.monotonic) -> None:
        self.left = initial
        self._clock = clock
        self._last_trickle = -1e18

    def on_traded(self, notional_usd: float) -> None:
        self.left += notional_usd

    def sync(self, left: float) -> None:
        """What the venue says is left (``userRateLimit``); never below 0."""
        self.left = max(0.0, left)

    def take(self, n: int) -> bool:
        """Spend ``n`` requests if they are left, else the 10 s trickle. The venue charges a
        trickled request like any other, so what is left goes below zero by ``n`` and later
        requests wait for the next trickle (before, the trickle left ``left`` untouched and
        the next batch spent requests the venue had already counted, which it refused)."""
        if self.left >= n:
            self.left -= n
            return True
        now = self._clock()
        if now - self._last_trickle >= 10.0:
            self._last_trickle = now
            self.left -= n
            return True
        return False


class LoopWatchdog(threading.Thread):
    """Cancels every order of ours from a thread of its own when the event loop stalls.

    The venue's loop calls ``beat()`` twice a second; when no beat has come for ``stall_s``
    (a blocked loop cannot send cancels, nor refresh the dead man's switch), this thread
    opens its own websocket, lists our open orders and cancels them, signed with its own
    nonces from the same strictly increasing source.
    """

    def __init__(self, venue: HyperliquidVenue, url: str, stall_s: float) -> None:
        super().__init__(name="hyperliquid-watchdog", daemon=True)
        self.venue = venue
        self.url = url
        self.stall_s = stall_s
        self.fired = 0
        self.last_error = ""
        self._last = time.monotonic()
        self._armed = True
        self._quit = threading.Event()

    def beat(self) -> None:
        self._last = time.monotonic()
        self._armed = True

    def stop(self) -> None:
        self._quit.set()

    def run(self) -> None:
        while not self._quit.wait(0.25):
            if self._armed and time.monotonic() - self._last > self.stall_s:
                self._armed = False  # once per stall
                try:
                    self._cancel_everything()
                    self.fired += 1
                except Exception as exc:  # a watchdog must never die of its own error
                    self.last_error = f"{type(exc).__name__}: {exc}"[:200]

    def _cancel_everything(self) -> None:
        from websockets.sync.client import connect as sync_connect

        venue = self.venue
        with sync_connect(self.url, open_timeout=5, close_timeout=1, proxy=None) as ws:

            def post(rid: int, kind: str, payload: dict[str, Any]) -> Any:
                ws.send(
                    msgspec.json.encode(
                        {"method": "post", "id": rid, "request": {"type": kind, "payload": payload}}
                    ).decode()
                )
                deadline = time.monotonic() + 5.0
                while time.monotonic() < deadline:
                    try:
                        frame = msgspec.json.decode(ws.recv(timeout=5.0))
                    except msgspec.DecodeError:
                        continue  # the greeting, or anything else that is not JSON
                    if isinstance(frame, dict) and frame.get("channel") == "post":
                        data = frame.get("data") or {}
                        if data.get("id") == rid:
                            return (data.get("response") or {}).get("payload")
                raise TimeoutError("no answer")

            listed = post(1, "info", {"type": "openOrders", "user": venue.user})
            orders = [o for o in (listed or {}).get("data") or [] if o.get("coin") == venue.coin]
            cloids = [o["cloid"] for o in orders if o.get("cloid")]
            oids = [o["oid"] for o in orders if not o.get("cloid")]
            for rid, action in (
                (2, wire.cancel_by_cloid(venue.asset, cloids) if cloids else None),
                (3, wire.cancel_by_oid(venue.asset, oids) if oids else None),
            ):
                if action is not None:
                    nonce = venue.nonces.next()
                    post(
                        rid,
                        "action",
                        {
                            "action": action,
                            "nonce": nonce,
                            "signature": venue.signer.sign(action, nonce),
                            "vaultAddress": None,
                        },
                    )


class HyperliquidVenue:
    """Live trading for one coin (see the module docstring)."""

    name = "hyperliquid"

    def __init__(
        self,
        coin: str,
        config: ClientConfig,
        signer: Signer,
        *,
        account: str | None = None,
        dms_ahead_s: float = 15.0,
        dms_refresh_s: float = 5.0,
        account_interval_s: float = 60.0,
        budget: AddressBudget | None = None,
        stall_s: float = 5.0,
        request_expiry_s: float | None = 1.0,
        action_timeout_s: float | None = 1.5,
        void_in_flight: bool = True,
        void_within_s: float = 30.0,
    ) -> None:
        self.coin = coin
        self.action_timeout_s = action_timeout_s
        """An order or modify post unanswered this long (None: ``post_timeout_s``) is voided."""
        self.void_in_flight = void_in_flight
        """Void unanswered orders and modifies with a ``noop`` of the same nonce."""
        self.void_within_s = void_within_s
        """After a drop, how long to wait for a connection to send the ``noop`` on."""
        self.request_expiry_ms = None if request_expiry_s is None else int(request_expiry_s * 1000)
        """Every action carries ``expiresAfter`` this far ahead: one delayed past it is
        refused by the venue (``Action already expired``) instead of taking effect late."""
        self.signer = signer
        self.user = (account or signer.address).lower()
        """The master account: queries and user streams name it, the agent only signs."""
        self.feed = HyperliquidFeed(
            coin,
            config,
            user_subscriptions=[
                {"type": "orderUpdates", "user": self.user},
                {"type": "userFills", "user": self.user},
                {"type": "userFundings", "user": self.user},
            ],
            on_user=self._on_user,
            on_connected=self._on_connected,
        )
        self.client = self.feed.client
        self.nonces = NonceSource()
        self.budget = budget or AddressBudget()
        self.stats = LiveStats()
        self.dms_ahead_s = dms_ahead_s
        self.dms_refresh_s = dms_refresh_s
        self.account_interval_s = account_interval_s
        self.instrument = Instrument(symbol=coin, tick_size=1.0, lot_size=1.0)
        self.asset = -1
        self.final_position: float | None = None
        self.final_open_orders: int | None = None
        """What the venue held after ``cancel_all`` (the shutdown's flat check)."""
        self._start_ms = time.time_ns() // 1_000_000
        self._events: deque[Event] = deque()
        self._wake = asyncio.Event()
        self._clock = HandOverClock()
        self._seen = _Recent[tuple[int, int], None]()
        self._cloids = _Recent[int, str]()
        """Order id -> our cloid (fills and updates may name only the oid)."""
        self._sides = _Recent[str, Side]()
        """Our cloid -> side (a modify names the order, the order wire needs the side)."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._voids: set[asyncio.Task[bool]] = set()
        """``noop`` voids on their way (a snapshot waits for them)."""
        self._budget_known = asyncio.Event()
        """Set once this connection's address budget was read (or the read failed)."""
        self._log = get_logger("hyperliquid")
        self.watchdog = LoopWatchdog(self, config.url, stall_s)
        self._fee_multiplier = 1.0
        self._fundings_seen = _Recent[tuple[int, str], None]()

    # ----- Venue ----------------------------------------------------------------------------

    async def discover(
        self, overrides: InstrumentConfig | None = None, fees: FeesConfig | None = None
    ) -> VenueInfo:
        """The market's rules, and the account's state and fee rates (``userFees``)."""
        info = await self.feed.discover(overrides, address=self.user, fees=fees)
        self.instrument = info.instrument
        self.asset = info.asset_index
        self._fee_multiplier = info.fee_multiplier
        return info

    async def connect(self) -> None:
        await self.feed.start(self._push)
        self._spawn(self._keep_account())
        self._spawn(self._keep_dead_mans_switch())
        self._spawn(self._heartbeat())
        self.watchdog.start()

    def now_ns(self) -> int:
        return self._clock.now_ns()

    async def events(self) -> AsyncIterator[Event]:
        while True:
            failure = self.feed.failure()
            if failure is not None:
                raise failure
            if self._events:
                yield self._clock.stamp(self._events.popleft())
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wake.wait()

    async def submit(self, actions: Sequence[Action]) -> None:
        cancels = [a for a in actions if isinstance(a, Cancel)]
        modifies = [a for a in actions if isinstance(a, Modify)]
        places = [a for a in actions if isinstance(a, Place)]
        for p in places:
            self._sides[p.cloid] = p.side
        for m in modifies:
            self._sides[m.new_cloid or m.cloid] = self._side_of(m.cloid)
        # The snapshot's queries first: the engine reads it as taken before this batch's
        # actions (info is answered at once; actions wait for a block).
        for snap in (a for a in actions if isinstance(a, RequestSnapshot)):
            self._spawn(self._snapshot(snap.request_id))
        if cancels:
            self._spawn(self._cancel(cancels))
        if modifies:
            self._spawn(self._modify(modifies))
        resting = [p for p in places if p.post_only]
        taking = [p for p in places if not p.post_only]
        if resting:
            self._spawn(self._place(resting))
        if taking:  # batched apart: Alo batches are prioritised by the venue
            self._spawn(self._take(taking))
        await asyncio.sleep(0)  # let the posts go out in the order created

    async def cancel_all(self) -> None:
        """Cancel every order of ours on this coin, and check with ``openOrders`` (3 tries)."""
        for _ in range(5):
            try:
                orders = await self._open_orders()
            except VenueError as exc:
                self._log.warning("cancel_all", error=str(exc))
                await asyncio.sleep(0.5)
                continue
            self.final_open_orders = len(orders)
            if not orders:
                with contextlib.suppress(VenueError):
                    self.final_position = finite((await self._state()).position(self.coin))
                return
            by_cloid = [o.cloid for o in orders if o.cloid]
            by_oid = [o.oid for o in orders if not o.cloid]
            if by_cloid:
                await self._post(wire.cancel_by_cloid(self.asset, by_cloid))
            if by_oid:
                await self._post(wire.cancel_by_oid(self.asset, by_oid))
            await asyncio.sleep(0.2)
        self._log.error("cancel_all_unconfirmed", coin=self.coin)

    async def _heartbeat(self) -> None:
        while True:
            self.watchdog.beat()
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        self.watchdog.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.stats.dms_available and self.client.connected:
            with contextlib.suppress(VenueError):
                await self._post(wire.schedule_cancel(None))
        await self.feed.close()

    # ----- sending --------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _push(self, event: Event) -> None:
        self._events.append(event)
        self._wake.set()

    async def _post(
        self,
        action: dict[str, Any],
        *,
        nonce: int | None = None,
        expires: bool = True,
        timeout_s: float | None = None,
    ) -> Any:
        """Sign and send ``action`` (with ``nonce``, else a fresh one; with ``expiresAfter``
        unless ``expires`` is False); its payload ``{"status", "response"}``. VenueError when
        no answer came (timeout, connection lost): the outcome is unknown."""
        if nonce is None:
            nonce = self.nonces.next()
        expiry = self.request_expiry_ms if expires else None
        expires_after = None if expiry is None else int(time.time() * 1000) + expiry
        payload: dict[str, Any] = {
            "action": action,
            "nonce": nonce,
            "signature": self.signer.sign(action, nonce, expires_after=expires_after),
            "vaultAddress": None,
        }
        if expires_after is not None:
            payload["expiresAfter"] = expires_after
        self.stats.actions += 1
        try:
            response = await self.client.post("action", payload, timeout_s=timeout_s)
        except VenueError:
            self.stats.action_failures += 1
            raise
        try:
            answer = msgspec.json.decode(response.response.payload)
        except msgspec.DecodeError:
            answer = None
        if not isinstance(answer, dict):
            raise VenueError(f"unexpected answer to {action.get('type')}")
        if answer.get("status") != "ok":
            self.stats.refused_actions += 1
            self.stats.last_refusal = str(answer.get("response"))[:200]
        return answer

    async def _void(self, nonce: int, kind: str) -> bool:
        """Send a ``noop`` signed with ``nonce`` (that of an unanswered ``kind`` action); True
        only when the venue took it, which proves the original can never execute."""
        stats = self.stats
        stats.voids_sent += 1
        self.budget.take(1)  # like a cancel: it goes even on a spent budget
        try:
            if not self.client.connected:  # dropped with the action in flight: the next one
                await self.client.wait_ready(self.void_within_s)
            # No deadline of its own: a late noop still takes the nonce, and does nothing else.
            answer = await self._post(wire.noop(), nonce=nonce, expires=False)
        except VenueError as exc:
            stats.voids_unanswered += 1
            self._log.warning("void_unanswered", action=kind, nonce=nonce, error=str(exc)[:200])
            return False
        if answer.get("status") == "ok":
            stats.nonces_voided += 1
            self._log.info("nonce_voided", action=kind, nonce=nonce)
            return True
        text = str(answer.get("response"))
        if text.startswith(_DUPLICATE_NONCE):
            stats.voids_too_late += 1  # the original took the nonce first: it committed
            self._log.warning("void_too_late", action=kind, nonce=nonce)
        else:
            stats.voids_unanswered += 1
            self._log.warning("void_refused", action=kind, nonce=nonce, reason=text[:200])
        return False

    def _ack(
        self,
        cloid: str,
        rid: int,
        status: AckStatus | str,
        reason: str = "",
        filled: float | None = None,
    ) -> None:
        self._push(
            OrderAck(
                ts_ns=time.time_ns(),
                cloid=cloid,
                status=status,
                reason=reason,
                request_id=rid,
                filled_size=filled,
            )
        )

    async def _statuses(
        self, action: dict[str, Any], requests: Sequence[Place | Modify | Cancel]
    ) -> list[Any] | None:
        """Post ``action``; one status per request, or None when there is no answer (an order
        or modify is then voided first: answered as refused when the void proves it)."""
        kind = action["type"]
        voidable = kind in _VOIDABLE
        nonce = self.nonces.next()
        try:
            answer = await self._post(
                action, nonce=nonce, timeout_s=self.action_timeout_s if voidable else None
            )
        except VenueError as exc:
            self._log.warning("no_answer", action=kind, error=str(exc)[:200])
            if not (voidable and self.void_in_flight):
                return None
            void = asyncio.get_running_loop().create_task(self._void(nonce, kind))
            self._voids.add(void)
            void.add_done_callback(self._voids.discard)
            return [{"error": _VOIDED}] * len(requests) if await void else None
        if answer.get("status") != "ok":
            text = str(answer.get("response"))
            return [{"error": text}] * len(requests)
        data = (answer.get("response") or {}).get("data") or {}
        statuses = list(data.get("statuses") or [])
        if (
            len(statuses) == 1
            and len(requests) > 1
            and isinstance(statuses[0], dict)
            and ("error" in statuses[0])
        ):
            statuses = statuses * len(requests)  # one error for the whole batch
        if len(statuses) != len(requests):
            self._log.warning("short_statuses", action=action["type"], got=len(statuses))
            return statuses + [None] * (len(requests) - len(statuses))
        return statuses

    async def _budget_read(self) -> None:
        """Until this connection's address budget is known (at most ``post_timeout_s``)."""
        if not self._budget_known.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.client.config.post_timeout_s):
                    await self._budget_known.wait()

    async def _place(self, places: list[Place]) -> None:
        await self._budget_read()
        if not self.budget.take(len(places)):
            self.stats.refused_locally += len(places)
            for p in places:
                self._ack(p.cloid, p.request_id, AckStatus.REJECTED, "address request budget spent")
            return
        inst = self.instrument
        orders = [
            wire.order_wire(inst, self.asset, p.side, p.price, p.size, p.cloid) for p in places
        ]
        statuses = await self._statuses(wire.order_action(orders), places)
        if statuses is None:
            return
        for p, st in zip(places, statuses, strict=True):
            if isinstance(st, dict) and ("resting" in st or "filled" in st):
                body = st.get("resting") or st.get("filled") or {}
                if "oid" in body:
                    self._cloids[int(body["oid"])] = p.cloid
                self._ack(p.cloid, p.request_id, AckStatus.ACCEPTED)
            elif isinstance(st, dict) and "error" in st:
                self._ack(p.cloid, p.request_id, AckStatus.REJECTED, str(st["error"]))
            # anything else (waitingForFill, missing): no answer; a snapshot will say

    async def _take(self, places: list[Place]) -> None:
        """Immediate-or-cancel orders (escalations): each answers CANCELED with what it took."""
        self.budget.take(len(places))  # reducing risk goes even on a spent budget
        inst = self.instrument
        orders = [
            wire.order_wire(inst, self.asset, p.side, p.price, p.size, p.cloid, post_only=False)
            for p in places
        ]
        statuses = await self._statuses(wire.order_action(orders), places)
        if statuses is None:
            return
        for p, st in zip(places, statuses, strict=True):
            if isinstance(st, dict) and "filled" in st:
                body = st["filled"]
                if "oid" in body:
                    self._cloids[int(body["oid"])] = p.cloid
                took = finite(str(body.get("totalSz", "")))
                self._ack(p.cloid, p.request_id, AckStatus.CANCELED, "filled", took)
            elif isinstance(st, dict) and "error" in st:
                text = str(st["error"])
                if text.startswith(_NO_MATCH):
                    self._ack(p.cloid, p.request_id, AckStatus.CANCELED, text, 0.0)
                else:
                    self._ack(p.cloid, p.request_id, AckStatus.REJECTED, text)

    async def _cancel(self, cancels: list[Cancel]) -> None:
        self.budget.take(len(cancels))  # cancels always go; they still spend the budget
        by_oid = [c for c in cancels if c.cloid.startswith("oid:")]
        by_cloid = [c for c in cancels if not c.cloid.startswith("oid:")]
        for group, action in (
            (by_cloid, wire.cancel_by_cloid(self.asset, [c.cloid for c in by_cloid])),
            (by_oid, wire.cancel_by_oid(self.asset, [int(c.cloid[4:]) for c in by_oid])),
        ):
            if not group:
                continue
            statuses = await self._statuses(action, group)
            if statuses is None:
                continue
            for c, st in zip(group, statuses, strict=True):
                if st == "success":
                    self._ack(c.cloid, c.request_id, AckStatus.CANCELED)
                elif isinstance(st, dict) and "error" in st:
                    text = str(st["error"])
                    status = (
                        AckStatus.NOT_FOUND if text.startswith(_NOT_FOUND) else AckStatus.REJECTED
                    )
                    self._ack(c.cloid, c.request_id, status, text)

    async def _modify(self, modifies: list[Modify]) -> None:
        await self._budget_read()
        if not self.budget.take(len(modifies)):
            self.stats.refused_locally += len(modifies)
            for m in modifies:
                self._ack(m.cloid, m.request_id, AckStatus.REJECTED, "address request budget spent")
            return
        inst = self.instrument
        legs: list[tuple[str | int, dict[str, Any]]] = []
        for m in modifies:
            side = self._side_of(m.cloid)
            new = m.new_cloid or m.cloid
            target: str | int = int(m.cloid[4:]) if m.cloid.startswith("oid:") else m.cloid
            legs.append((target, wire.order_wire(inst, self.asset, side, m.price, m.size, new)))
        statuses = await self._statuses(wire.batch_modify(legs), modifies)
        if statuses is None:
            return
        for m, st in zip(modifies, statuses, strict=True):
            if isinstance(st, dict) and "resting" in st:
                self._ack(m.cloid, m.request_id, AckStatus.ACCEPTED)
            elif isinstance(st, dict) and "error" in st:
                text = str(st["error"])
                if text.startswith(_NOT_FOUND):
                    status = AckStatus.NOT_FOUND
                elif text.startswith(_MODIFY_HALF_DONE):
                    status = AckStatus.CANCELED
                else:
                    status = AckStatus.REJECTED
                self._ack(m.cloid, m.request_id, status, text)

    def _side_of(self, cloid: str) -> Side:
        return self._sides.get(cloid, Side.BUY)

    # ----- snapshots and account ------------------------------------------------------------

    async def _open_orders(self) -> list[OpenOrderWire]:
        orders = await self.client.info(
            {"type": "openOrders", "user": self.user}, list[OpenOrderWire]
        )
        return [o for o in orders if o.coin == self.coin]

    async def _state(self) -> ClearinghouseState:
        return await self.client.info(
            {"type": "clearinghouseState", "user": self.user}, ClearinghouseState
        )

    async def _snapshot(self, request_id: int) -> None:
        """Orders and position as one instant. They are two queries, and a block can commit
        between them (a fill would then be in the position but not in the order's fill, or
        the other way round): the open orders are read before and after the position, and the
        reading is used only when both agree (every oid with the same size). Otherwise read
        again, the later orders as the new "before", up to ``_SNAPSHOT_TRIES`` times. A void
        on its way is waited for first: what became of its original is then committed."""
        if self._voids:
            await asyncio.wait(set(self._voids))
        try:
            orders = await self._open_orders()
            for _ in range(_SNAPSHOT_TRIES):
                state = await self._state()
                after = await self._open_orders()
                if _same_orders(orders, after):
                    break
                self.stats.snapshot_retries += 1
                orders = after
            else:
                self.stats.torn_snapshots += 1
                self._log.warning("snapshot_torn", tries=_SNAPSHOT_TRIES)
                return  # the engine asks again on its settle timeout
        except VenueError as exc:
            self._log.warning("snapshot_failed", error=str(exc)[:200])
            return  # the engine asks again on its settle timeout
        self.stats.snapshots += 1
        position = finite(state.position(self.coin))
        if position is None:
            return
        held = []
        for o in orders:
            price, size = finite(o.limitPx), finite(o.sz)
            orig = finite(o.origSz) if o.origSz is not None else size
            if price is None or size is None or orig is None:
                continue
            cloid = o.cloid or f"oid:{o.oid}"
            self._cloids[o.oid] = cloid
            side = Side.BUY if o.side == "B" else Side.SELL
            self._sides[cloid] = side
            held.append(
                OpenOrder(
                    cloid=cloid,
                    side=side,
                    price=price,
                    size=size,
                    filled_size=max(0.0, orig - size),
                )
            )
        ts = time.time_ns()
        # The account first: the limit a position is judged against needs the equity (before
        # it, a static fallback that an inherited position could wrongly exceed).
        self._account(ts, state)
        self._push(
            VenueSnapshot(
                ts_ns=ts,
                # The API server's clock when it says, else when the answer came.
                exchange_ts_ns=ts if state.time is None else state.time * 1_000_000,
                position=position,
                orders=tuple(held),
                request_id=request_id,
            )
        )

    def _account(self, ts: int, state: ClearinghouseState) -> None:
        value = finite(state.marginSummary.accountValue)
        if value is not None:
            self._push(
                AccountUpdate(
                    ts_ns=ts,
                    account_value=value,
                    balance=finite(state.withdrawable),
                    position=finite(state.position(self.coin)),
                )
            )

    def _on_connected(self) -> None:
        """A new connection (the first or a reconnect): read the address budget again."""
        self._budget_known.clear()
        self._spawn(self._read_budget())

    async def _read_budget(self) -> None:
        try:
            limit = await self.client.info(
                {"type": "userRateLimit", "user": self.user}, UserRateLimit
            )
        except VenueError as exc:
            self.stats.budget_read_failures += 1
            self._log.warning("budget_read_failed", error=str(exc)[:200], left=self.budget.left)
        else:
            self.stats.budget_reads += 1
            self.budget.sync(float(limit.left))
            self._log.info(
                "address_budget",
                used=limit.nRequestsUsed,
                cap=limit.nRequestsCap,
                left=self.budget.left,
            )
        finally:
            self._budget_known.set()

    async def _keep_account(self) -> None:
        while True:
            if self.client.connected:
                try:
                    self._account(time.time_ns(), await self._state())
                except VenueError as exc:
                    self._log.warning("account_sync_failed", error=str(exc)[:200])
                await self._read_fees()
            await asyncio.sleep(self.account_interval_s)

    async def _read_fees(self) -> None:
        """``userFees`` again: a new tier or rebate becomes a ``FeeUpdate`` (the engine's fee
        floor, the run summary). A failed read or unusable rates are counted; the old rates
        stay."""
        stats = self.stats
        try:
            fees = await self.client.info({"type": "userFees", "user": self.user}, UserFees)
            rates = rates_from_user_fees(fees.userAddRate, fees.userCrossRate)
        except (VenueError, ValueError) as exc:
            stats.fee_read_failures += 1
            self._log.warning("fee_read_failed", error=str(exc)[:200])
            return
        stats.fee_reads += 1
        maker = scaled_fee(rates.maker_bps, self._fee_multiplier)
        taker = scaled_fee(rates.taker_bps, self._fee_multiplier)
        inst = self.instrument
        if maker is None or taker is None:
            return
        if (maker, taker) == (inst.maker_fee_bps, inst.taker_fee_bps):
            return
        stats.fee_changes += 1
        self.instrument = msgspec.structs.replace(inst, maker_fee_bps=maker, taker_fee_bps=taker)
        self._log.info("fee_rates", maker_bps=maker, taker_bps=taker, source=rates.source)
        self._push(
            FeeUpdate(ts_ns=time.time_ns(), maker_bps=maker, taker_bps=taker, source=rates.source)
        )

    async def _keep_dead_mans_switch(self) -> None:
        while self.stats.dms_available:
            if self.client.connected:
                when = time.time_ns() // 1_000_000 + int(self.dms_ahead_s * 1000)
                self.budget.take(1)  # the venue counts it too; it goes on a spent budget
                try:
                    answer = await self._post(wire.schedule_cancel(when))
                except VenueError:
                    answer = None
                if answer is not None and answer.get("status") == "ok":
                    self.stats.dms_refreshes += 1
                elif answer is not None and str(answer.get("response")).startswith(_DMS_GATE):
                    self.stats.dms_available = False
                    self._log.warning(
                        "dead_mans_switch_unavailable",
                        reason=str(answer.get("response"))[:200],
                        fallback="quotes are cancelled by the stale-data and disconnect pauses",
                    )
                    return
            await asyncio.sleep(self.dms_refresh_s)

    # ----- user streams ---------------------------------------------------------------------

    def _on_user(self, ns: int, channel: str, message: Message) -> None:
        if channel == "orderUpdates" and isinstance(message, tuple):
            for update in message:
                if isinstance(update, WsOrder) and update.order.coin == self.coin:
                    self._order_update(ns, update)
        elif channel == "userFills" and isinstance(message, WsUserFills):
            for fill in message.fills:
                if fill.coin == self.coin:
                    self._fill(ns, fill, snapshot=message.isSnapshot)
        elif channel == "userFundings" and isinstance(message, WsUserFundings):
            for payment in message.payments:
                if payment.coin == self.coin:
                    self._funding(ns, payment, snapshot=message.isSnapshot)

    def _funding(self, ns: int, payment: WsUserFunding, *, snapshot: bool) -> None:
        stats = self.stats
        if snapshot and payment.time < self._start_ms:
            stats.history_fundings += 1  # before this process: already in the account value
            return
        key = (payment.time, payment.coin)
        if key in self._fundings_seen:
            stats.duplicate_fundings += 1
            return
        self._fundings_seen[key] = None
        amount = finite(payment.usdc)
        if amount is None:
            self.feed.stats.bad_values += 1
            return
        stats.fundings += 1
        self._push(
            FundingPayment(
                ts_ns=ns,
                amount=amount,
                payment_id=f"{payment.time}:{payment.coin}",
                rate=finite(payment.fundingRate),
                position=finite(payment.szi),
                exchange_ts_ns=payment.time * 1_000_000,
            )
        )

    def _cloid(self, oid: int, cloid: str | None) -> str:
        if cloid:
            self._cloids[oid] = cloid
            return cloid
        return self._cloids.get(oid, f"oid:{oid}")

    def _order_update(self, ns: int, update: WsOrder) -> None:
        self.stats.order_updates += 1
        o = update.order
        cloid = self._cloid(o.oid, o.cloid)
        self._sides[cloid] = Side.BUY if o.side == "B" else Side.SELL
        status: AckStatus | str | None = order_status(update.status)
        if status is None:
            self.feed.client.decoder.stats.unknown_statuses += 1
            status = update.status  # the engine counts it and reconciles
        orig, left = finite(o.origSz or o.sz), finite(o.sz)
        if update.status == "filled":
            left = 0.0
        filled = None if orig is None or left is None else max(0.0, orig - left)
        self._push(
            OrderAck(
                ts_ns=ns,
                cloid=cloid,
                status=status,
                reason=update.status,
                request_id=UPDATE,
                filled_size=filled,
            )
        )

    def _fill(self, ns: int, fill: WsFill, *, snapshot: bool) -> None:
        stats = self.stats
        if snapshot and fill.time < self._start_ms:
            stats.history_fills += 1  # before this process: already in the position
            return
        key = (fill.tid, fill.oid)
        if key in self._seen:
            stats.duplicate_fills += 1
            return
        self._seen[key] = None
        price, size, fee = finite(fill.px), finite(fill.sz), finite(fill.fee)
        if price is None or size is None:
            return  # the engine's position is reconciled from snapshots
        stats.fills += 1
        self.budget.on_traded(price * size)
        self._push(
            Fill(
                ts_ns=ns,
                cloid=self._cloid(fill.oid, fill.cloid),
                price=price,
                size=size,
                side=Side.BUY if fill.side == "B" else Side.SELL,
                fill_id=f"{fill.tid}:{fill.oid}",
                fee=fee or 0.0,
                exchange_ts_ns=fill.time * 1_000_000,
            )
        )
