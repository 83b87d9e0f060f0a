"""The loopback Hyperliquid exchange that trades: ``FakeHyperliquid`` plus one account.

Per ``reference/hyperliquid-verified.md`` section 4.3-4.4:

- every action's signature is recovered and must be the configured agent's (a mismatch answers
  ``User or API Wallet 0x... does not exist.``); nonces: the 100 highest are kept, a duplicate
  or one below them is refused, as is one outside (now - 2 days, now + 1 day);
- ``order`` (Alo only), ``cancelByCloid``, ``cancel`` (by oid), ``batchModify`` (cancel-replace:
  a new oid, the order wire's cloid) and ``scheduleCancel`` (refused below 1,000,000 USD of
  traded volume, as for real; when armed it fires and cancels everything with status
  ``scheduledCancel``), with the documented statuses and error texts (``... asset=N``);
- our orders fill against the fake's public trades (a trade through our price fills all of
  it, one at our price half the print) and when the touch moves through them;
- user streams: ``orderUpdates`` (no snapshot, no replay) and ``userFills`` (a snapshot of
  recent fills on every subscribe, so clients must dedupe); info ``openOrders`` and
  ``clearinghouseState`` from the real account state;
- the address request budget (``address_budget`` plus 1 per USDC traded, n per batch of n;
  once spent, one request per 10 s, the rest refused with the venue's text);
- disorder on demand: ``reorder_ms`` delays each post reply and user-stream message by a
  random amount, independently per stream (fills may overtake acks and the other way round),
  and ``duplicate_fills`` re-sends a fill message with that probability.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from market_maker.venues.hyperliquid.signing import recover_signer
from tests.fakes.hyperliquid import FakeHyperliquid, _Conn, _fmt

ASSET = 1  # the coin's index in the fake's meta (ETH is 0)


class _Order:
    __slots__ = ("cloid", "oid", "orig", "px", "side", "sz", "ts")

    def __init__(self, oid: int, cloid: str | None, side: str, px: int, sz: int) -> None:
        self.oid, self.cloid, self.side, self.px = oid, cloid, side, px
        self.sz = self.orig = sz
        self.ts = int(time.time() * 1000)


class FakeHyperliquidExchange(FakeHyperliquid):
    def __init__(
        self,
        *,
        agent: str,
        user: str,
        mainnet: bool = True,
        traded_volume_usd: float = 0.0,
        reorder_ms: float = 0.0,
        duplicate_fills: float = 0.0,
        address_budget: float = 10_000.0,
        **market: Any,
    ) -> None:
        super().__init__(**market)
        self.agent = agent.lower()
        self.user = user.lower()
        self.mainnet = mainnet
        self.traded_volume_usd = traded_volume_usd
        self.reorder_ms = reorder_ms
        self.duplicate_fills = duplicate_fills
        self.requests_used = 0
        self.address_budget = address_budget
        """Requests allowed: this plus 1 per USDC traded; once spent, one per 10 s."""
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
        self.refused: list[str] = []
        self._oid = 1000
        self._stream_at: dict[tuple[int, str], float] = {}

    # ----- the account, for tests -----------------------------------------------------------

    @property
    def position(self) -> float:
        return self.position_lots / 10**self.lot_decimals

    def open_orders(self) -> int:
        return len(self.orders)

    # ----- actions --------------------------------------------------------------------------

    def action(self, payload: dict[str, Any]) -> Any:
        action = payload.get("action") or {}
        nonce = payload.get("nonce")
        sig = payload.get("signature") or {}
        try:
            signer = recover_signer(
                action,
                sig,
                nonce=int(nonce),  # type: ignore[arg-type]
                mainnet=self.mainnet,
                vault_address=payload.get("vaultAddress"),
                expires_after=payload.get("expiresAfter"),
            )
        except (ValueError, TypeError, KeyError):
            signer = "0x" + "0" * 40
        if signer != self.agent:
            return self._err(f"User or API Wallet {signer} does not exist.")
        refused = self._check_nonce(int(nonce))  # type: ignore[arg-type]
        if refused:
            return self._err(refused)
        kind = action.get("type")
        n = len(action.get("orders") or action.get("cancels") or action.get("modifies") or [1])
        allowed = self.address_budget + self.traded_volume_usd
        if self.requests_used + n > allowed and kind != "scheduleCancel":
            now = time.monotonic()
            if now - self._last_trickle < 10.0:
                return self._err(
                    f"Too many cumulative requests sent ({self.requests_used + n} > {int(allowed)}) "
                    f"for cumulative volume traded ${self.traded_volume_usd:.2f}. "
                    "Place taker orders to free up 1 request per USDC traded."
                )
            self._last_trickle = now
        self.requests_used += n
        self.actions.append(str(kind))
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
        if kind == "scheduleCancel":
            if self.traded_volume_usd < 1_000_000:
                return self._err(
                    "Cannot set scheduled cancel time until enough volume traded. "
                    f"Required: $1000000. Traded: ${self.traded_volume_usd:.5f}."
                )
            when = action.get("time")
            if when is not None and when < time.time() * 1000 + 5000:
                return self._err(
                    "Scheduled cancel time too early, must be at least 5 seconds from now."
                )
            self.dms_ms = when
            return {"status": "ok", "response": {"type": "default"}}
        return self._err(f"Unknown action type {kind!r}")

    def _check_nonce(self, nonce: int) -> str:
        now = time.time() * 1000
        if nonce in self.nonces:
            return f"Invalid nonce: duplicate nonce {nonce}"
        if len(self.nonces) >= 100 and nonce < self.nonces[0]:
            return f"Invalid nonce: nonce too low {nonce} < {self.nonces[0]}"
        if nonce < now - 2 * 86_400_000:
            return f"Invalid nonce: nonce too low {nonce} < {int(now - 2 * 86_400_000)}"
        if nonce > now + 86_400_000:
            return f"Invalid nonce: nonce too high {nonce} > {int(now + 86_400_000)}"
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
            return f"this fake takes Alo and Ioc orders only. asset={ASSET}"
        if not px_text.isdigit() or px_text.startswith("0"):  # tick 1: integer prices
            return f"Order has invalid price. asset={ASSET}"
        lots = self._lots(sz_text)
        if not lots:
            return f"Order has invalid size. asset={ASSET}"
        px = int(px_text)
        if px * lots / 10**self.lot_decimals < 10.0:
            return f"Order must have minimum value of $10. asset={ASSET}"
        bid, ask = self._touch()
        crosses = (wire.get("b") and px >= ask) or (not wire.get("b") and px <= bid)
        if tif == "Alo" and crosses:
            return f"Post only order would have immediately matched, bbo was {bid}@{ask}. asset={ASSET}"
        if tif == "Ioc" and not crosses:
            return f"Order could not immediately match against any resting orders. asset={ASSET}"
        return px, lots

    def _rest(self, wire: dict[str, Any], px: int, lots: int) -> _Order:
        self._oid += 1
        order = _Order(self._oid, wire.get("c"), "B" if wire.get("b") else "A", px, lots)
        self.orders[order.oid] = order
        self._order_update(order, "open")
        return order

    def _place(self, wire: dict[str, Any]) -> Any:
        if wire.get("a") != ASSET:
            return {"error": f"Invalid asset. asset={wire.get('a')}"}
        checked = self._check(wire)
        if isinstance(checked, str):
            return {"error": checked}
        if wire.get("c") and any(o.cloid == wire["c"] for o in self.orders.values()):
            return {"error": f"Duplicate cloid. asset={ASSET}"}
        if wire["t"]["limit"]["tif"] == "Ioc":
            return self._take(wire, checked[1])
        order = self._rest(wire, *checked)
        return {"resting": {"oid": order.oid, **({"cloid": order.cloid} if order.cloid else {})}}

    def _take(self, wire: dict[str, Any], lots: int) -> Any:
        """An Ioc order trades at the touch (the fake's book is deep enough) and is gone."""
        bid, ask = self._touch()
        self._oid += 1
        buy = bool(wire.get("b"))
        order = _Order(self._oid, wire.get("c"), "B" if buy else "A", ask if buy else bid, lots)
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
            return {"error": f"Order was never placed, already canceled, or filled. asset={ASSET}"}
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
        fee = notional * 0.00015
        self.cash -= sign * notional + fee
        self.traded_volume_usd += notional
        order.sz -= lots
        self._tid += 1
        fill = {
            "coin": self.coin,
            "px": _fmt(float(order.px)),
            "sz": _fmt(size),
            "side": order.side,
            "time": int(time.time() * 1000),
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
            self._user_stream("userFills", frame)
        if order.sz == 0:
            del self.orders[order.oid]
            self._order_update(order, "filled")

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
        data = [{"order": wire, "status": status, "statusTimestamp": int(time.time() * 1000)}]
        self._user_stream("orderUpdates", self._frame("orderUpdates", data))

    def _size(self, lots: int) -> str:
        return _fmt(lots / 10**self.lot_decimals) if lots else "0.0"

    def _user_stream(self, kind: str, frame: str) -> None:
        for conn in list(self.conns):
            if any(
                s.get("type") == kind and str(s.get("user", "")).lower() == self.user
                for s in conn.subs
            ):
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
        if sub.get("type") == "userFills" and str(sub.get("user", "")).lower() == self.user:
            snapshot = {"user": self.user, "isSnapshot": True, "fills": self.fills[-50:]}
            self._later(conn, "userFills", self._frame("userFills", snapshot))

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
            return {
                "assetPositions": positions,
                "marginSummary": summary,
                "crossMarginSummary": summary,
                "withdrawable": _fmt(round(max(value, 0.01), 6)),
                "time": int(time.time() * 1000),
            }
        return super().info(payload)
