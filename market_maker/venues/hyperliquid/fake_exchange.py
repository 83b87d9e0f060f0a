"""The loopback Hyperliquid exchange that trades: ``FakeHyperliquid`` plus one account.

Per ``reference/hyperliquid-verified.md`` sections 4.3-4.4 and 7:

- actions are committed in blocks, every ``block_ms`` (70 ms; ``block_ms=0`` applies each one
  on arrival). A block sorts what arrived since the last one into three classes and applies
  them in that order, arrival order within each: (1) actions that send no GTC or IOC order
  (``Alo`` batches, ``batchModify`` to ``Alo`` orders, ``noop``, ``scheduleCancel``),
  (2) cancels, (3) actions with at least one GTC or IOC order. So an ``Ioc`` sent before a
  cancel trades after it, and a cancel sent before an ``Alo`` order finds it resting;
- the signature is checked on arrival: it must recover to the configured agent (a mismatch
  answers ``User or API Wallet 0x... does not exist.`` at once). The rest is checked at the
  commit, with the block's time: ``expiresAfter`` (past it: ``Action already expired``, and
  the action costs 5x its address-budget requests), then the nonce (the 100 highest are kept;
  a duplicate or one below them is refused, as is one outside (now - 2 days, now + 1 day)). A
  ``noop`` only marks its nonce used, so an action signed with that nonce and committed after
  it is refused as a duplicate (``Invalid nonce: duplicate nonce <n>``), and the other way
  round;
- ``order`` (``Alo`` and ``Ioc``), ``cancelByCloid``, ``cancel`` (by oid), ``batchModify``
  (cancel-replace: a new oid, the order wire's cloid), ``noop`` and ``scheduleCancel``
  (refused below 1,000,000 USD of traded volume, as for real; when armed it fires and cancels
  everything with status ``scheduledCancel``), with the documented statuses and error texts
  (``... asset=N``);
- the ``post`` reply of an action, and the ``orderUpdates`` and ``userFills`` of what its block
  did, go out after the commit; fills made in a block carry the block's time. Our orders also
  fill against the fake's public trades (a trade through our price fills all of it, one at our
  price half the print) and when the touch moves through them;
- user streams: ``orderUpdates`` (no snapshot, no replay) and ``userFills`` (a snapshot of
  recent fills on every subscribe, so clients must dedupe); ``userFundings`` likewise (GB:
  "funding payments snapshot followed by funding payments on the hour"; envelope
  ``{isSnapshot, user, fundings: [WsUserFunding]}``) and the same payment on ``userEvents``
  (channel ``user``, ``{"funding": WsUserFunding}``);
- funding (trading/funding): ``pay_funding()`` (or every ``funding_interval_s``) books
  ``usdc = -rate * szi * oraclePx`` (the fake's oracle is its mid; positive rate: longs pay)
  to the account, in the account value, and streams it;
- info requests are answered at once from committed state, so they miss actions still
  waiting for a block: ``openOrders``, ``clearinghouseState`` (its ``time`` is the API
  server's clock, ``server_skew_ms`` off the blocks' clock; ``state_time=False`` leaves it
  out), ``userRateLimit`` (``nRequestsCap`` = ``address_budget`` + traded volume,
  ``nRequestsUsed`` = ``requests_used``);
- the address request budget (n requests per batch of n; once spent, one request per 10 s,
  the rest refused with the venue's text; refusals cost nothing, expired actions 5x; cancels
  may go on to ``min(limit + 100000, 2 * limit)``);
- disorder on demand: ``reorder_ms`` delays each post reply and user-stream message by a
  random amount, independently per stream (fills may overtake acks and the other way round),
  ``duplicate_fills`` re-sends a fill message with that probability, and ``hold()`` keeps
  blocks from committing (a slow block: whatever arrives waits) until ``hold(False)``;
  ``detain(kinds)`` keeps actions of those types from reaching a block at all (a slow path
  to the proposer: later actions overtake them) until ``release()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from market_maker.venues.hyperliquid.fake import FakeHyperliquid, _Conn, _fmt
from market_maker.venues.hyperliquid.signing import recover_signer

NO_TAKER, CANCELS, TAKERS = 0, 1, 2
"""A block's classes, in the order it applies them (reference section 7)."""

_EXPIRED_COST = 5
"""An action refused for a stale ``expiresAfter`` costs this many times its requests."""


def block_class(action: dict[str, Any]) -> int:
    """Where ``action`` goes in a block: cancels are CANCELS; an action placing at least
    one GTC or IOC order (a modify counts as the order it places) is TAKERS; anything else
    (``Alo`` placements and modifies, ``noop``, ``scheduleCancel``) is NO_TAKER."""
    kind = action.get("type")
    if kind in ("cancel", "cancelByCloid"):
        return CANCELS
    if kind == "order":
        wires = list(action.get("orders") or [])
    elif kind == "batchModify":
        wires = [m.get("order") or {} for m in action.get("modifies") or []]
    else:
        wires = []
    takes = any(_tif(w) in ("Gtc", "Ioc") for w in wires)
    return TAKERS if takes else NO_TAKER


def _tif(order_wire: dict[str, Any]) -> Any:
    return ((order_wire.get("t") or {}).get("limit") or {}).get("tif")


class _Order:
    __slots__ = ("cloid", "oid", "orig", "px", "side", "sz", "ts")

    def __init__(
        self, oid: int, cloid: str | None, side: str, px: int, sz: int, ts_ms: int
    ) -> None:
        self.oid, self.cloid, self.side, self.px = oid, cloid, side, px
        self.sz = self.orig = sz
        self.ts = ts_ms


class _Queued:
    """An action waiting for its block, and the post that waits for its answer."""

    __slots__ = ("answer", "payload", "rank")

    def __init__(self, payload: dict[str, Any], answer: asyncio.Future[Any]) -> None:
        self.payload = payload
        self.rank = block_class(payload.get("action") or {})
        self.answer = answer


class FakeHyperliquidExchange(FakeHyperliquid):
    def __init__(
        self,
        *,
        agent: str | None = None,
        user: str | None = None,
        mainnet: bool = True,
        traded_volume_usd: float = 0.0,
        reorder_ms: float = 0.0,
        duplicate_fills: float = 0.0,
        address_budget: float = 10_000.0,
        block_ms: float = 70.0,
        server_skew_ms: int = 0,
        state_time: bool = True,
        no_margin: bool = False,
        funding_interval_s: float | None = None,
        **market: Any,
    ) -> None:
        super().__init__(**market)
        self.agent = None if agent is None else agent.lower()
        """The API wallet whose signatures are taken (None: any signature that recovers)."""
        self.user = None if user is None else user.lower()
        """The account whose streams are served (None: the first to subscribe to one)."""
        self.mainnet = mainnet
        self.traded_volume_usd = traded_volume_usd
        self.reorder_ms = reorder_ms
        self.duplicate_fills = duplicate_fills
        self.duplicates_sent = 0
        self.requests_used = 0
        self.address_budget = address_budget
        """Requests allowed: this plus 1 per USDC traded; once spent, one per 10 s."""
        self.block_ms = block_ms
        """Actions commit every this many ms (0: each one on arrival)."""
        self.server_skew_ms = server_skew_ms
        """The API server's clock (``clearinghouseState.time``) minus the blocks' clock."""
        self.state_time = state_time
        self.no_margin = no_margin
        """Refuse every new order with the venue's ``Insufficient margin to place order.``"""
        self._last_trickle = -1e18
        self.lot_decimals = self.sz_decimals
        self.orders: dict[int, _Order] = {}
        self.position_lots = 0
        self.cash = 0.0
        self.fills: list[dict[str, Any]] = []
        self.nonces: list[int] = []
        self.dms_ms: int | None = None
        self.dms_triggers = 0
        self.actions: list[str] = []
        """The type of every action applied (past its checks), in commit order."""
        self.committed: list[tuple[int, int]] = []
        """(block number, nonce) of every action a block took up, in commit order."""
        self.refused: list[str] = []
        self.blocks = 0
        self.held = False
        self.detained: frozenset[str] = frozenset()
        self.budget_refused: list[str] = []
        """The type of every action refused for the address budget."""
        self._transit: list[_Queued] = []
        self._queue: list[_Queued] = []
        self._block_time_ms: int | None = None
        self._blocks_task: asyncio.Task[None] | None = None
        self._oid = 1000
        self._stream_at: dict[tuple[int, str], float] = {}
        self.funding_interval_s = funding_interval_s
        self.fundings: list[dict[str, Any]] = []
        """Every funding payment booked (``WsUserFunding``), oldest first."""
        self._funding_task: asyncio.Task[None] | None = None

    # ----- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await super().start()
        if self.block_ms:
            self._blocks_task = asyncio.create_task(self._run_blocks())
        if self.funding_interval_s:
            self._funding_task = asyncio.create_task(self._run_funding(self.funding_interval_s))

    async def stop(self) -> None:
        for task in (self._blocks_task, self._funding_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for queued in [*self._queue, *self._transit]:
            queued.answer.cancel()
        self._queue.clear()
        self._transit.clear()
        await super().stop()

    # ----- the account, for tests -----------------------------------------------------------

    @property
    def position(self) -> float:
        return float(self.position_lots / 10**self.lot_decimals)

    def open_orders(self) -> int:
        return len(self.orders)

    # ----- blocks ---------------------------------------------------------------------------

    def hold(self, on: bool = True) -> None:
        """Hold the blocks (nothing commits, whatever arrives waits), or let them go on."""
        self.held = on

    def queued(self) -> int:
        """Actions waiting for a block."""
        return len(self._queue)

    def detain(self, kinds: frozenset[str] | set[str]) -> None:
        """Actions of these types arriving from now on wait outside the blocks (in transit:
        later actions reach a block first) until ``release()``."""
        self.detained = frozenset(kinds)

    def release(self) -> None:
        """Stop detaining; detained actions join the next block (at once if ``block_ms=0``)."""
        self.detained = frozenset()
        transit, self._transit = self._transit, []
        for item in transit:
            if self.block_ms:
                self._queue.append(item)
            elif not item.answer.done():
                item.answer.set_result(self._commit(item.payload, self._now_ms()))

    def in_transit(self) -> int:
        """Detained actions."""
        return len(self._transit)

    async def _run_blocks(self) -> None:
        loop = asyncio.get_running_loop()
        period_s = self.block_ms / 1000.0
        next_at = loop.time() + period_s
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at = max(next_at + period_s, loop.time())
            if not self.held:
                self.commit_block()

    def commit_block(self) -> None:
        """Apply what arrived since the last block: by class, arrival order within each."""
        queued, self._queue = self._queue, []
        if not queued:
            return
        self.blocks += 1
        self._block_time_ms = int(time.time() * 1000)
        try:
            for item in sorted(queued, key=lambda q: q.rank):  # stable: arrival order kept
                self.committed.append((self.blocks, int(item.payload.get("nonce") or 0)))
                answer = self._commit(item.payload, self._block_time_ms)
                if not item.answer.done():
                    item.answer.set_result(answer)
        finally:
            self._block_time_ms = None

    def _now_ms(self) -> int:
        """The venue's time: the block's while one commits."""
        if self._block_time_ms is not None:
            return self._block_time_ms
        return int(time.time() * 1000)

    # ----- actions --------------------------------------------------------------------------

    async def action(self, payload: dict[str, Any]) -> Any:
        """The signature now; everything else when the action's block commits."""
        refused = self._check_signature(payload)
        if refused:
            return self._err(refused)
        kind = (payload.get("action") or {}).get("type")
        if not self.block_ms and kind not in self.detained:
            return self._commit(payload, self._now_ms())
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        queued = _Queued(payload, answer)
        (self._transit if kind in self.detained else self._queue).append(queued)
        return await answer

    def _check_signature(self, payload: dict[str, Any]) -> str:
        try:
            signer = recover_signer(
                payload.get("action") or {},
                payload.get("signature") or {},
                nonce=int(payload.get("nonce")),  # type: ignore[arg-type]
                mainnet=self.mainnet,
                vault_address=payload.get("vaultAddress"),
                expires_after=payload.get("expiresAfter"),
            )
        except (ValueError, TypeError, KeyError):
            signer = "0x" + "0" * 40
        if self.agent is None and signer != "0x" + "0" * 40:
            return ""
        return "" if signer == self.agent else f"User or API Wallet {signer} does not exist."

    def _commit(self, payload: dict[str, Any], block_ms: int) -> Any:
        """One action at ``block_ms``: its deadline, its nonce, the budget, then its effect."""
        action = payload.get("action") or {}
        kind = str(action.get("type"))
        n = len(action.get("orders") or action.get("cancels") or action.get("modifies") or [1])
        expires_after = payload.get("expiresAfter")
        if expires_after is not None and block_ms > int(expires_after):
            self.requests_used += _EXPIRED_COST * n
            return self._err("Action already expired")
        refused = self._check_nonce(int(payload["nonce"]), block_ms)
        if refused:
            return self._err(refused)
        refused = self._charge(kind, n)
        if refused:
            self.budget_refused.append(kind)
            return self._err(refused)
        self.actions.append(kind)
        return self._apply(kind, action, block_ms)

    def _charge(self, kind: str, n: int) -> str:
        """Spend ``n`` address requests, or the venue's refusal (a refusal costs nothing)."""
        allowed = self.address_budget + self.traded_volume_usd
        if kind in ("cancel", "cancelByCloid"):
            allowed = min(allowed + 100_000, 2 * allowed)
        if self.requests_used + n > allowed and kind != "scheduleCancel":
            now = time.monotonic()
            if now - self._last_trickle < 10.0:
                return (
                    "Too many cumulative requests sent "
                    f"({self.requests_used + n} > {int(allowed)}) "
                    f"for cumulative volume traded ${self.traded_volume_usd:.2f}. "
                    "Place taker orders to free up 1 request per USDC traded."
                )
            self._last_trickle = now
        self.requests_used += n
        return ""

    def _apply(self, kind: str, action: dict[str, Any], block_ms: int) -> Any:
        if kind == "order":
            statuses = [self._place(o) for o in action.get("orders", [])]
            return self._ok("order", statuses)
        if kind == "cancelByCloid":
            return self._ok(
                "cancel", [self._cancel(c.get("cloid"), None) for c in action["cancels"]]
            )
        if kind == "cancel":
            return self._ok("cancel", [self._cancel(None, c.get("o")) for c in action["cancels"]])
        if kind == "batchModify":
            return self._ok(
                "order", [self._modify(m["oid"], m["order"]) for m in action["modifies"]]
            )
        if kind == "noop":
            return {"status": "ok", "response": {"type": "default"}}  # the nonce is now used
        if kind == "scheduleCancel":
            if self.traded_volume_usd < 1_000_000:
                return self._err(
                    "Cannot set scheduled cancel time until enough volume traded. "
                    f"Required: $1000000. Traded: ${self.traded_volume_usd:.5f}."
                )
            when = action.get("time")
            if when is not None and when < block_ms + 5000:
                return self._err(
                    "Scheduled cancel time too early, must be at least 5 seconds from now."
                )
            self.dms_ms = when
            return {"status": "ok", "response": {"type": "default"}}
        return self._err(f"Unknown action type {kind!r}")

    def _check_nonce(self, nonce: int, now_ms: int) -> str:
        if nonce in self.nonces:
            return f"Invalid nonce: duplicate nonce {nonce}"
        if len(self.nonces) >= 100 and nonce < self.nonces[0]:
            return f"Invalid nonce: nonce too low {nonce} < {self.nonces[0]}"
        if nonce < now_ms - 2 * 86_400_000:
            return f"Invalid nonce: nonce too low {nonce} < {int(now_ms - 2 * 86_400_000)}"
        if nonce > now_ms + 86_400_000:
            return f"Invalid nonce: nonce too high {nonce} > {int(now_ms + 86_400_000)}"
        self.nonces.append(nonce)
        self.nonces.sort()
        del self.nonces[:-100]
        return ""

    def _err(self, text: str) -> dict[str, Any]:
        self.refused.append(text)
        return {"status": "err", "response": text}

    @staticmethod
    def _ok(kind: str, statuses: list[Any]) -> dict[str, Any]:
        return {"status": "ok", "response": {"type": kind, "data": {"statuses": statuses}}}

    def _lots(self, text: str) -> int | None:
        whole, _, frac = text.partition(".")
        if len(frac) > self.lot_decimals or not (whole + frac).isdigit():
            return None
        return int(whole + frac.ljust(self.lot_decimals, "0"))

    def _check(self, wire: dict[str, Any]) -> tuple[int, int] | str:
        px_text, sz_text = str(wire.get("p")), str(wire.get("s"))
        tif = (wire.get("t") or {}).get("limit", {}).get("tif")
        if tif not in ("Alo", "Ioc"):
            return f"this fake takes Alo and Ioc orders only. asset={self.asset_id}"
        if not px_text.isdigit() or px_text.startswith("0"):  # tick 1: integer prices
            return f"Order has invalid price. asset={self.asset_id}"
        lots = self._lots(sz_text)
        if not lots:
            return f"Order has invalid size. asset={self.asset_id}"
        px = int(px_text)
        if px * lots / 10**self.lot_decimals < 10.0:
            return f"Order must have minimum value of $10. asset={self.asset_id}"
        bid, ask = self._touch()
        crosses = (wire.get("b") and px >= ask) or (not wire.get("b") and px <= bid)
        if tif == "Alo" and crosses:
            return (
                "Post only order would have immediately matched, "
                f"bbo was {bid}@{ask}. asset={self.asset_id}"
            )
        if tif == "Ioc" and not crosses:
            return (
                "Order could not immediately match against any resting orders. "
                f"asset={self.asset_id}"
            )
        return px, lots

    def _rest(self, wire: dict[str, Any], px: int, lots: int) -> _Order:
        self._oid += 1
        order = _Order(
            self._oid, wire.get("c"), "B" if wire.get("b") else "A", px, lots, self._now_ms()
        )
        self.orders[order.oid] = order
        self._order_update(order, "open")
        return order

    def _place(self, wire: dict[str, Any]) -> Any:
        if wire.get("a") != self.asset_id:
            return {"error": f"Invalid asset. asset={wire.get('a')}"}
        if self.no_margin:
            return {"error": f"Insufficient margin to place order. asset={self.asset_id}"}
        checked = self._check(wire)
        if isinstance(checked, str):
            return {"error": checked}
        if wire.get("c") and any(o.cloid == wire["c"] for o in self.orders.values()):
            return {"error": f"Duplicate cloid. asset={self.asset_id}"}
        if wire["t"]["limit"]["tif"] == "Ioc":
            return self._take(wire, checked[1])
        order = self._rest(wire, *checked)
        return {"resting": {"oid": order.oid, **({"cloid": order.cloid} if order.cloid else {})}}

    def _take(self, wire: dict[str, Any], lots: int) -> Any:
        """An Ioc order trades at the touch (the fake's book is deep enough) and is gone."""
        bid, ask = self._touch()
        self._oid += 1
        buy = bool(wire.get("b"))
        side, px = ("B", ask) if buy else ("A", bid)
        order = _Order(self._oid, wire.get("c"), side, px, lots, self._now_ms())
        self.orders[order.oid] = order
        self._fill(order, lots)
        ids = {"oid": order.oid, **({"cloid": order.cloid} if order.cloid else {})}
        return {"filled": {"totalSz": self._size(lots), "avgPx": _fmt(float(order.px)), **ids}}

    def _find(self, cloid: str | None, oid: Any) -> _Order | None:
        if oid is not None and not isinstance(oid, str):
            return self.orders.get(int(oid))
        key = cloid if cloid is not None else oid
        return next((o for o in self.orders.values() if o.cloid == key), None)

    def _cancel(self, cloid: str | None, oid: Any, status: str = "canceled") -> Any:
        order = self._find(cloid, oid)
        if order is None:
            return {
                "error": "Order was never placed, already canceled, or filled. "
                f"asset={self.asset_id}"
            }
        del self.orders[order.oid]
        self._order_update(order, status)
        return "success"

    def _modify(self, key: Any, wire: dict[str, Any]) -> Any:
        old = self._find(None, key) if not isinstance(key, str) else self._find(key, None)
        if old is None:
            return {"error": "Cannot modify canceled or filled order"}
        del self.orders[old.oid]  # cancel-replace: the old leg goes whatever happens next
        self._order_update(old, "canceled")
        checked = self._check(wire)
        if isinstance(checked, str):
            return {"error": f"Error placing new order during modify: {checked}"}
        order = self._rest(wire, *checked)
        return {"resting": {"oid": order.oid, **({"cloid": order.cloid} if order.cloid else {})}}

    # ----- matching -------------------------------------------------------------------------

    async def on_trade(self, trade: dict[str, Any]) -> None:
        px = int(float(trade["px"]))
        size = self._lots(trade["sz"]) or 0
        buy_aggressor = trade["side"] == "B"
        for order in list(self.orders.values()):
            if (order.side == "A") != buy_aggressor:
                continue
            through = px > order.px if buy_aggressor else px < order.px
            if through:
                self._fill(order, order.sz)
            elif px == order.px and size > 1:
                self._fill(order, min(order.sz, size // 2))

    async def on_tick(self) -> None:
        bid, ask = self._touch()
        for order in list(self.orders.values()):
            if (order.side == "B" and order.px >= ask) or (order.side == "A" and order.px <= bid):
                self._fill(order, order.sz)
        if self.dms_ms is not None and time.time() * 1000 >= self.dms_ms:
            self.dms_ms = None
            self.dms_triggers += 1
            for order in list(self.orders.values()):
                self._cancel(None, order.oid, status="scheduledCancel")

    def _fill(self, order: _Order, lots: int) -> None:
        if lots <= 0:
            return
        sign = 1 if order.side == "B" else -1
        start = self.position
        self.position_lots += sign * lots
        size = lots / 10**self.lot_decimals
        notional = order.px * size
        fee = notional * self.maker_fee_rate
        self.cash -= sign * notional + fee
        self.traded_volume_usd += notional
        order.sz -= lots
        self._tid += 1
        fill = {
            "coin": self.coin,
            "px": _fmt(float(order.px)),
            "sz": _fmt(size),
            "side": order.side,
            "time": self._now_ms(),
            "startPosition": _fmt(abs(start)) if start >= 0 else "-" + _fmt(-start),
            "dir": "Open Long" if sign > 0 else "Open Short",
            "closedPnl": "0.0",
            "hash": "0x" + f"{self._tid:064x}",
            "oid": order.oid,
            "crossed": False,
            "fee": _fmt(fee),
            "tid": self._tid,
            "cloid": order.cloid,
            "feeToken": "USDC",
        }
        self.fills.append(fill)
        frame = self._frame("userFills", {"user": self.user, "isSnapshot": False, "fills": [fill]})
        self._user_stream("userFills", frame)
        if self.rng.random() < self.duplicate_fills:
            self.duplicates_sent += 1
            self._user_stream("userFills", frame)
        if order.sz == 0:
            del self.orders[order.oid]
            self._order_update(order, "filled")

    # ----- funding --------------------------------------------------------------------------

    async def _run_funding(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.pay_funding()

    def pay_funding(self) -> dict[str, Any] | None:
        """A funding time: the position pays (or receives) the hourly rate on its value at
        the oracle price, booked to the account and streamed; None when flat."""
        if not self.position_lots:
            return None
        oracle = self.mid_ticks * self.tick
        usdc = -self.funding_rate * self.position * oracle
        self.cash += usdc
        szi = self._size(abs(self.position_lots))
        payment = {
            "time": self._now_ms(),
            "coin": self.coin,
            "usdc": _fmt(round(usdc, 6)),
            "szi": szi if self.position_lots > 0 else "-" + szi,
            "fundingRate": _fmt(self.funding_rate),
        }
        self.fundings.append(payment)
        frame = {"user": self.user, "isSnapshot": False, "fundings": [payment]}
        self._user_stream("userFundings", self._frame("userFundings", frame))
        self._user_stream("userEvents", self._frame("user", {"funding": payment}))
        return payment

    # ----- user streams ---------------------------------------------------------------------

    def _order_update(self, order: _Order, status: str) -> None:
        wire = {
            "coin": self.coin,
            "side": order.side,
            "limitPx": _fmt(float(order.px)),
            "sz": self._size(order.sz),
            "oid": order.oid,
            "timestamp": order.ts,
            "origSz": self._size(order.orig),
            **({"cloid": order.cloid} if order.cloid else {}),
        }
        data = [{"order": wire, "status": status, "statusTimestamp": self._now_ms()}]
        self._user_stream("orderUpdates", self._frame("orderUpdates", data))

    def _ours(self, user: Any) -> bool:
        """Whether ``user`` is the fake's account (with none named, the first one asked for
        becomes it)."""
        if self.user is None and user:
            self.user = str(user).lower()
        return self.user is not None and str(user or "").lower() == self.user

    def _size(self, lots: int) -> str:
        return _fmt(lots / 10**self.lot_decimals) if lots else "0.0"

    def _user_stream(self, kind: str, frame: str) -> None:
        for conn in list(self.conns):
            if any(s.get("type") == kind and self._ours(s.get("user")) for s in conn.subs):
                self._later(conn, kind, frame)

    async def reply(self, conn: _Conn, frame: str) -> None:
        self._later(conn, "post", frame)

    def _later(self, conn: _Conn, stream: str, frame: str) -> None:
        """Deliver after a random delay; each stream keeps its own order, streams do not."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        at = now + (self.rng.random() * self.reorder_ms / 1000.0 if self.reorder_ms else 0.0)
        key = (id(conn), stream)
        at = max(at, self._stream_at.get(key, 0.0))
        self._stream_at[key] = at
        loop.call_at(at, lambda: self._spawn(self._send(conn, frame)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def on_subscribed(self, conn: _Conn, sub: dict[str, Any]) -> None:
        await super().on_subscribed(conn, sub)
        if sub.get("type") == "userFills" and self._ours(sub.get("user")):
            snapshot = {"user": self.user, "isSnapshot": True, "fills": self.fills[-50:]}
            self._later(conn, "userFills", self._frame("userFills", snapshot))
        if sub.get("type") == "userFundings" and self._ours(sub.get("user")):
            snapshot = {"user": self.user, "isSnapshot": True, "fundings": self.fundings[-50:]}
            self._later(conn, "userFundings", self._frame("userFundings", snapshot))

    # ----- info -----------------------------------------------------------------------------

    def info(self, payload: dict[str, Any]) -> Any:
        kind = payload.get("type")
        if kind == "openOrders":
            return [
                {
                    "coin": self.coin,
                    "limitPx": _fmt(float(o.px)),
                    "oid": o.oid,
                    "side": o.side,
                    "sz": self._size(o.sz),
                    "timestamp": o.ts,
                    "origSz": self._size(o.orig),
                    **({"cloid": o.cloid} if o.cloid else {}),
                }
                for o in self.orders.values()
            ]
        if kind == "clearinghouseState":
            mid = self.mid_ticks * self.tick
            value = self.account_value + self.cash + self.position * mid
            summary = {
                "accountValue": _fmt(round(value, 6)),
                "totalNtlPos": "0.0",
                "totalRawUsd": "0.0",
                "totalMarginUsed": "0.0",
            }
            positions = []
            if self.position_lots:
                szi = self._size(abs(self.position_lots))
                positions.append(
                    {
                        "type": "oneWay",
                        "position": {
                            "coin": self.coin,
                            "szi": szi if self.position_lots > 0 else "-" + szi,
                        },
                    }
                )
            state: dict[str, Any] = {
                "assetPositions": positions,
                "marginSummary": summary,
                "crossMarginSummary": summary,
                "withdrawable": _fmt(round(max(value, 0.01), 6)),
            }
            if self.state_time:  # the API server's clock, not the blocks'
                state["time"] = int(time.time() * 1000) + self.server_skew_ms
            return state
        if kind == "userRateLimit":
            return {
                "cumVlm": _fmt(round(self.traded_volume_usd, 6)),
                "nRequestsUsed": self.requests_used,
                "nRequestsCap": int(self.address_budget + self.traded_volume_usd),
                "nRequestsSurplus": 0,
            }
        return super().info(payload)


async def serve(
    fake: FakeHyperliquid,
    *,
    duration_s: float | None = None,
    drop_every_s: float | None = None,
    ready: Any = None,
) -> None:
    """Run ``fake`` until ``duration_s`` passes (for ever if None) or the task is cancelled;
    ``ready(url)`` once it listens; an abrupt drop of every socket each ``drop_every_s``."""
    await fake.start()
    try:
        if ready is not None:
            ready(fake.url)
        loop = asyncio.get_running_loop()
        end = None if duration_s is None else loop.time() + duration_s
        while end is None or loop.time() < end:
            step = drop_every_s or 3600.0
            if end is not None:
                step = min(step, end - loop.time())
            await asyncio.sleep(max(step, 0.0))
            if drop_every_s and (end is None or loop.time() < end):
                await fake.drop(clean=False)
    finally:
        await fake.stop()
