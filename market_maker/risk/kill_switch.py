"""Kill switch: owns the position limits and the trading state.

States, by severity:

- ``ACTIVE``: quote both sides.
- ``REDUCING``: only quotes that shrink |position| (position between 1x and ``hard_multiple`` x
  its limit).
- ``PAUSED``: no quotes; clears by itself when its cause clears (stale data returns, a cascade
  decays, rejections age out of their window, the venue reconnects).
- ``HALTED``: cancel everything; latched until ``reset()``.

Each check is a small function of the switch's inputs that returns a ``Reason`` or ``None``; the
state is the most severe of the active reasons, and every HALTED reason is latched. Time comes in
as ``ts_ns``: nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections import deque
from enum import IntEnum, StrEnum

import msgspec

from market_maker.config import AppConfig, KillSwitchConfig
from market_maker.risk.limits import (
    BindingLimit,
    PositionLimits,
    confidence_from_samples,
    dynamic_max_position,
    effective_max_position,
    horizon_s,
    position_limits,
)
from market_maker.risk.refusals import FATAL_AT_ONCE, FATAL_WHEN_ALL, classify, refusal_key

__all__ = ["HaltRecord", "KillSwitch", "KillSwitchMemory", "Reason", "TradingState", "Trigger"]

_NS_PER_S = 1_000_000_000
_NS_PER_DAY = 86_400 * _NS_PER_S
_isfinite = math.isfinite


class TradingState(IntEnum):
    """What the engine may quote; larger values are more severe."""

    ACTIVE = 0
    REDUCING = 1
    PAUSED = 2
    HALTED = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Trigger(StrEnum):
    """Why the state left ACTIVE."""

    DAILY_LOSS = "daily_loss"
    DRAWDOWN = "drawdown"
    POSITION_VALUE = "position_value"
    POSITION_CONTRACTS = "position_contracts"
    STALE_DATA = "stale_data"
    CASCADE = "cascade"
    REJECTIONS = "rejections"
    DISCONNECTED = "disconnected"
    MANUAL = "manual"


class Reason(msgspec.Struct, frozen=True, kw_only=True):
    """One active trigger: what fired, the state it asks for, and a human-readable detail."""

    trigger: Trigger
    state: TradingState
    detail: str


class HaltRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A latched halt as a restart must find it: its trigger, its detail, when it latched."""

    trigger: str
    detail: str
    ts_ns: int = 0


class KillSwitchMemory(msgspec.Struct, frozen=True, kw_only=True):
    """What the kill switch must not forget across a restart (the runtime keeps it in a state
    file): its latched halts, and the UTC day's opening equity with the peak, so that a
    restart is no way around the daily-loss or drawdown limit."""

    day: int = -1
    """The UTC day (days since 1970-01-01) that ``day_start_equity`` opened; -1: none yet."""
    day_start_equity: float | None = None
    peak_equity: float | None = None
    halts: tuple[HaltRecord, ...] = ()


def _zone(
    trigger: Trigger, amount: float, limit: float, hard_multiple: float, unit: str
) -> Reason | None:
    """REDUCING between 1x and ``hard_multiple`` x ``limit``, HALTED beyond."""
    if not amount > limit:
        return None
    state = TradingState.HALTED if amount > hard_multiple * limit else TradingState.REDUCING
    return Reason(
        trigger=trigger, state=state, detail=f"{amount:.6g} {unit} over limit {limit:.6g} {unit}"
    )


class KillSwitch:
    """Derives the position limit every cycle and decides the trading state."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self._ks: KillSwitchConfig = config.kill_switch
        self._rejections: deque[int] = deque(maxlen=self._ks.max_rejections)
        self._rejection_texts: deque[str] = deque(maxlen=self._ks.max_rejections)
        self._fatal: tuple[int, str] | None = None
        """(time, text) of a refusal no retry can fix: it halts."""
        self.limits: PositionLimits | None = None
        self._limits_key: tuple[object, ...] = ()
        # The trade rate the limits read is held within a band of the exact one: a factor
        # 1 / (1 - tol) either way of the rate it was taken at (risk.limit_tolerance).
        step = 1.0 / (1.0 - config.risk.limit_tolerance)
        self._rate_step = step
        self._rate_band = step * step
        self._rate_held = math.nan
        self.account_value: float | None = None
        self.balance: float | None = None
        self.peak_equity: float | None = None
        self.day_start_equity: float | None = None
        self._day = -1
        self._first_ts_ns: int | None = None
        self.last_market_ts_ns: int | None = None
        self.connected = True
        self._manual: str | None = None
        self._manual_persists = True
        self._latched: dict[Trigger, Reason] = {}
        self._latched_at: dict[Trigger, int] = {}
        self.memory_version = 0
        """Grows whenever ``memory()`` would answer differently (the runtime saves then)."""
        # Cascade hysteresis: paused until the ratio has stayed low for a while; halted only
        # when it has stayed extreme for a while.
        self._cascade_paused = False
        self._calm_since: int | None = None
        self._extreme_since: int | None = None
        # The PAUSED reason of the phase under way (burst, or waiting for calm): built when the
        # phase begins and kept while it lasts, so its detail tells the ratio it began at.
        self._cascade_reason: tuple[bool, Reason] | None = None
        # (position, mid, ratio) of the last check the screen found all clear, until an input
        # other than time and fresh market data changes: the same inputs are clear again as
        # long as the data is fresh (nothing else in the screen moves with time).
        self._clear_at: tuple[float, float, float] | None = None
        self._stale_pause_ns = self._ks.stale_pause_after_s * _NS_PER_S
        self.state = TradingState.ACTIVE
        self.reasons: tuple[Reason, ...] = ()

    # ----- inputs -------------------------------------------------------------------------

    def on_account(self, ts_ns: int, account_value: float, balance: float | None = None) -> bool:
        """Record account equity (USD) and optionally the balance for the budget limit.

        False (and ignored) when the equity is not a finite number.
        """
        if not _isfinite(account_value):
            return False
        self._clear_at = None
        self.account_value = account_value
        if balance is not None and _isfinite(balance):
            self.balance = balance
        day = ts_ns // _NS_PER_DAY
        if day > self._day or self.day_start_equity is None:
            # Only forward: a snapshot stamped yesterday resets nothing.
            self._day = max(day, self._day)
            self.day_start_equity = account_value
            self.memory_version += 1
        if self.peak_equity is None or account_value > self.peak_equity:
            self.peak_equity = account_value
            self.memory_version += 1
        return True

    def on_market_data(self, ts_ns: int) -> None:
        """Fresh market data arrived at ``ts_ns``."""
        if self.last_market_ts_ns is None or ts_ns > self.last_market_ts_ns:
            self.last_market_ts_ns = ts_ns

    def on_rejection(self, ts_ns: int, text: str = "") -> None:
        """The venue refused a request, in its own words ``text`` (``OrderAck.reason``): it
        counts toward a rejection storm, and a text no retry can fix (``refusals.py``) halts."""
        self._clear_at = None
        self._rejections.append(ts_ns)
        text = text.strip()
        self._rejection_texts.append(text)
        if self._fatal is None and classify(text) in FATAL_AT_ONCE:
            self._fatal = (ts_ns, text)

    def set_connected(self, connected: bool) -> None:
        """The venue connection went down (False) or came back (True)."""
        self._clear_at = None
        self.connected = connected

    def halt(self, detail: str = "manual halt", *, persist: bool = True) -> None:
        """Operator halt: latched until ``reset()``. ``persist=False`` (a shutdown) leaves it
        out of ``memory()``, and never replaces a halt that persists."""
        self._clear_at = None
        if not persist and self._manual is not None and self._manual_persists:
            return
        self._manual = detail
        self._manual_persists = persist
        self.memory_version += 1

    def reset(self) -> None:
        """Clear every latched reason and the manual halt.

        The operator accepts the current equity: peak and day-start equity are re-based to it,
        so a drawdown or daily loss that already happened does not fire again at once.
        """
        self._manual = None
        self._manual_persists = True
        self._clear_at = None
        self._latched.clear()
        self._latched_at.clear()
        self.memory_version += 1
        self._rejections.clear()
        self._rejection_texts.clear()
        self._fatal = None
        self._cascade_paused = False
        self._calm_since = self._extreme_since = None
        self._cascade_reason = None
        if self.account_value is not None:
            self.peak_equity = self.account_value
            self.day_start_equity = self.account_value
        self.state = TradingState.ACTIVE
        self.reasons = ()

    # ----- memory across restarts -----------------------------------------------------------

    def memory(self) -> KillSwitchMemory:
        """The latched halts (a shutdown's left out) and the day's equity baseline."""
        halts = [
            HaltRecord(trigger=str(t), detail=r.detail, ts_ns=self._latched_at.get(t, 0))
            for t, r in self._latched.items()
            if t is not Trigger.MANUAL or self._manual_persists
        ]
        if (
            self._manual is not None
            and self._manual_persists
            and Trigger.MANUAL not in self._latched
        ):
            halts.append(HaltRecord(trigger=str(Trigger.MANUAL), detail=self._manual))
        return KillSwitchMemory(
            day=self._day,
            day_start_equity=self.day_start_equity,
            peak_equity=self.peak_equity,
            halts=tuple(halts),
        )

    def restore(self, memory: KillSwitchMemory) -> None:
        """Take up what an earlier process left: its latched halts stay latched, and a day's
        baseline of the same UTC day is kept (a later day re-bases at the first account
        value, as ever)."""
        self._clear_at = None
        self._day = memory.day
        self.day_start_equity = memory.day_start_equity
        self.peak_equity = memory.peak_equity
        known = {str(t): t for t in Trigger}
        for h in memory.halts:
            trigger = known.get(h.trigger, Trigger.MANUAL)
            self._latched[trigger] = Reason(
                trigger=trigger, state=TradingState.HALTED, detail=h.detail
            )
            self._latched_at[trigger] = h.ts_ns
            if trigger is Trigger.MANUAL:
                self._manual, self._manual_persists = h.detail, True
        if memory.halts:
            self.state = TradingState.HALTED
            self.reasons = tuple(self._latched.values())
        self.memory_version += 1

    # ----- limits -------------------------------------------------------------------------

    def update_limits(
        self, *, sigma: float, sigma_samples: int, trade_intensity: float
    ) -> PositionLimits | None:
        """Re-derive the limits from the latest estimates; None until the account is known.
        The same inputs give the same limits: those are kept, not derived again."""
        if self.account_value is None:
            self.limits = None
            return None
        rate = trade_intensity
        if self._rate_band > 1.0 and 0.0 < rate < math.inf:
            # The limit grows as sqrt(rate) (T = 1 / rate) or stays flat (T capped): read at
            # a held rate within [rate / band, rate] it is within [exact * (1 - tol), exact].
            held = self._rate_held
            if not held <= rate <= held * self._rate_band:  # also the first (NaN) one
                held = self._rate_held = rate / self._rate_step
            rate = held
        key = (self.account_value, self.balance, sigma, sigma_samples, rate)
        if key == self._limits_key and self.limits is not None:
            return self.limits
        self._limits_key = key
        self._clear_at = None
        risk = self.config.risk
        self.limits = position_limits(
            account_value=self.account_value,
            sigma=sigma,
            horizon_s=horizon_s(rate, risk.max_horizon_s),
            confidence=confidence_from_samples(sigma_samples, risk.confidence_samples),
            config=risk,
            sizing=self.config.sizing,
            balance=self.balance,
        )
        return self.limits

    @property
    def binding_limit(self) -> BindingLimit:
        return BindingLimit.STATIC if self.limits is None else self.limits.binding

    def max_position(self, mid: float) -> float:
        """Effective position limit in contracts at ``mid``.

        ``max_position_value / mid`` once the account value is known and ``mid > 0``, else the
        static ``max_position``; then the optional hard cap.
        """
        risk = self.config.risk
        value = None if self.limits is None else self.limits.max_position_value
        dynamic = dynamic_max_position(value, mid, risk.max_position)
        return effective_max_position(dynamic, risk.max_position_cap)

    # ----- checks -------------------------------------------------------------------------

    def check(
        self, ts_ns: int, *, position: float, mid: float, hawkes_ratio: float
    ) -> TradingState:
        """Run every check at ``ts_ns``; sets and returns ``state`` (reasons in ``reasons``).

        Two shortcuts give the same answer for less: the inputs of the last all-clear again,
        with fresh market data and nothing else changed, are clear at once; otherwise a screen
        (``_all_clear``) proves no check can fire before any is run."""
        if self._first_ts_ns is None:
            self._first_ts_ns = ts_ns
        inputs = (position, mid, hawkes_ratio)
        if inputs == self._clear_at:
            last = self.last_market_ts_ns
            if last is not None and ts_ns - last < self._stale_pause_ns:
                return TradingState.ACTIVE  # state and reasons are still the clear ones
        if not self._latched and self._all_clear(ts_ns, position, mid, hawkes_ratio):
            self._clear_at = inputs
            self.reasons = ()
            self.state = TradingState.ACTIVE
            return TradingState.ACTIVE
        self._clear_at = None
        found = [
            r
            for r in (
                self._check_manual(),
                self._check_daily_loss(),
                self._check_drawdown(),
                self._check_position_value(position, mid),
                self._check_position_contracts(position),
                self._check_stale(ts_ns),
                self._check_cascade(ts_ns, hawkes_ratio),
                self._check_rejections(ts_ns),
                self._check_disconnected(),
            )
            if r is not None
        ]
        latched = self._latched
        if not found and not latched:
            self.reasons = ()
            self.state = TradingState.ACTIVE
            return TradingState.ACTIVE
        if len(found) == 1 and not latched and found[0].state is not TradingState.HALTED:
            # One reason that latches nothing (a cascade pause, most often).
            only = found[0]
            self.reasons = (only,)
            self.state = only.state
            return only.state
        for r in found:
            if r.state is TradingState.HALTED:
                if r.trigger not in latched:
                    self._latched_at[r.trigger] = ts_ns
                    self.memory_version += 1
                latched[r.trigger] = r
        # A latched halt outranks a milder reason of the same trigger now (a cascade that has
        # calmed to the PAUSED band is still a halt until reset).
        reasons = tuple(latched.values()) + tuple(r for r in found if r.trigger not in latched)
        self.reasons = reasons
        self.state = max(r.state for r in reasons)
        return self.state

    def cascade_pause_holds(
        self, ts_ns: int, hawkes_ratio: float, *, position: float, mid: float
    ) -> bool:
        """True when the state is a cascade pause alone and still is at ``ts_ns``: the cascade,
        staleness and position checks are run (as ``check`` would) and nothing else.

        For a market event: the other checks read equity, refusals, the connection and manual
        halts, which such an event cannot move (refusals only age out, and none is among the
        reasons). False when anything else is among the reasons, a position check has a reason
        (even one milder than the pause: ``check`` lists it), or the pause lifts or deepens:
        then ``check`` decides, at the same time, with the cascade's timers exactly where this
        left them.
        """
        reasons = self.reasons
        if (
            self.state is not TradingState.PAUSED
            or len(reasons) != 1
            or reasons[0].trigger is not Trigger.CASCADE
            or self._latched
            or self._manual is not None
            or self._fatal is not None
            or not self.connected
        ):
            return False
        if self._check_stale(ts_ns) is not None:
            return False
        if position != 0.0 and (
            self._check_position_value(position, mid) is not None
            or self._check_position_contracts(position) is not None
        ):
            return False
        reason = self._check_cascade(ts_ns, hawkes_ratio)
        if reason is None or reason.state is not TradingState.PAUSED:
            return False
        self.reasons = (reason,)
        return True

    def _all_clear(self, ts_ns: int, position: float, mid: float, ratio: float) -> bool:
        """A cheap screen for the common case: True only when no check below could fire.

        Each clause is the plain negation of one ``_check_*``; anything doubtful (NaN, missing
        data) answers False and the full checks run, so this can only save time, never hide a
        reason.
        """
        ks = self._ks
        if self._manual is not None or not self.connected:
            return False
        if not ratio <= ks.cascade_pause_ratio or self._cascade_paused:
            return False
        if self._extreme_since is not None:
            return False  # let the cascade check clear its timer
        last = self.last_market_ts_ns
        if last is None or (ts_ns - last) >= self._stale_pause_ns:
            return False
        if len(self._rejections) >= ks.max_rejections or self._fatal is not None:
            return False
        equity = self.account_value
        if equity is not None:
            start = self.day_start_equity
            peak = self.peak_equity
            if start is not None and not start - equity < ks.max_daily_loss_usd:
                return False
            if (
                peak is not None
                and peak > 0.0
                and not ((peak - equity) / peak * 100.0 < ks.max_drawdown_pct)
            ):
                return False
        if not abs(position) * mid <= self.max_position(mid) * mid:
            return False
        cap = ks.max_position_contracts
        return cap is None or abs(position) <= cap

    def _check_manual(self) -> Reason | None:
        if self._manual is None:
            return None
        return Reason(trigger=Trigger.MANUAL, state=TradingState.HALTED, detail=self._manual)

    def _check_daily_loss(self) -> Reason | None:
        if self.account_value is None or self.day_start_equity is None:
            return None
        loss = self.day_start_equity - self.account_value
        if loss < self._ks.max_daily_loss_usd:
            return None
        return Reason(
            trigger=Trigger.DAILY_LOSS,
            state=TradingState.HALTED,
            detail=f"lost {loss:.2f} USD today (limit {self._ks.max_daily_loss_usd:.2f})",
        )

    def _check_drawdown(self) -> Reason | None:
        peak = self.peak_equity
        if self.account_value is None or peak is None or peak <= 0.0:
            return None
        drawdown_pct = (peak - self.account_value) / peak * 100.0
        if drawdown_pct < self._ks.max_drawdown_pct:
            return None
        return Reason(
            trigger=Trigger.DRAWDOWN,
            state=TradingState.HALTED,
            detail=f"equity {drawdown_pct:.2f}% below peak {peak:.2f} "
            f"(limit {self._ks.max_drawdown_pct:.2f}%)",
        )

    def _check_position_value(self, position: float, mid: float) -> Reason | None:
        if not (_isfinite(mid) and mid > 0.0 and _isfinite(position)):
            return None
        limit_value = self.max_position(mid) * mid
        return _zone(
            Trigger.POSITION_VALUE, abs(position) * mid, limit_value, self._ks.hard_multiple, "USD"
        )

    def _check_position_contracts(self, position: float) -> Reason | None:
        cap = self._ks.max_position_contracts
        if cap is None or not _isfinite(position):
            return None
        return _zone(
            Trigger.POSITION_CONTRACTS, abs(position), cap, self._ks.hard_multiple, "contracts"
        )

    def _check_stale(self, ts_ns: int) -> Reason | None:
        last = self.last_market_ts_ns if self.last_market_ts_ns is not None else self._first_ts_ns
        if last is None:
            return None
        age_s = (ts_ns - last) / _NS_PER_S
        if age_s >= self._ks.stale_halt_after_s and self.connected:
            # Silence on a connection that claims to be healthy is what halts; while the
            # venue is disconnected the silence is explained, and reconnecting clears it.
            state = TradingState.HALTED
        elif age_s >= self._ks.stale_pause_after_s:
            state = TradingState.PAUSED
        else:
            return None
        return Reason(
            trigger=Trigger.STALE_DATA, state=state, detail=f"no market data for {age_s:.1f} s"
        )

    def _check_cascade(self, ts_ns: int, ratio: float) -> Reason | None:
        """PAUSED above the pause ratio until the ratio has stayed under the resume ratio for
        ``cascade_resume_after_s``; HALTED when it has stayed above the halt ratio for
        ``cascade_halt_after_s``. NaN counts as neither calm nor a burst."""
        ks = self._ks
        if ratio > ks.cascade_halt_ratio:
            if self._extreme_since is None:
                self._extreme_since = ts_ns
        else:
            self._extreme_since = None
        if ratio > ks.cascade_pause_ratio:
            self._cascade_paused = True
            self._calm_since = None
        elif self._cascade_paused:
            if ratio < ks.cascade_resume_ratio:
                if self._calm_since is None:
                    self._calm_since = ts_ns
                if ts_ns - self._calm_since >= ks.cascade_resume_after_s * _NS_PER_S:
                    self._cascade_paused = False
                    self._calm_since = None
            else:
                self._calm_since = None
        since = self._extreme_since
        if since is not None and ts_ns - since >= ks.cascade_halt_after_s * _NS_PER_S:
            return Reason(
                trigger=Trigger.CASCADE,
                state=TradingState.HALTED,
                detail=f"trade arrivals {ratio:.2f}x their long-run rate for "
                f"{(ts_ns - since) / _NS_PER_S:.1f} s",
            )
        if not self._cascade_paused:
            self._cascade_reason = None
            return None
        burst = ratio > ks.cascade_pause_ratio
        kept = self._cascade_reason
        if kept is not None and kept[0] is burst:
            return kept[1]
        detail = (
            f"trade arrivals {ratio:.2f}x their long-run rate"
            if burst
            else f"trade arrivals {ratio:.2f}x their long-run rate, waiting for calm"
        )
        reason = Reason(trigger=Trigger.CASCADE, state=TradingState.PAUSED, detail=detail)
        self._cascade_reason = (burst, reason)
        return reason

    def _check_rejections(self, ts_ns: int) -> Reason | None:
        """PAUSED for ``max_rejections`` within ``rejection_window_s``; HALTED at once for a
        refusal no retry can fix, and for a storm made only of refusals of a fatal class
        (margin on every order). The detail carries the venue's own text."""
        window = self._rejections
        window_s = self._ks.rejection_window_s
        since = ts_ns - int(window_s * _NS_PER_S)
        recent = [t for ts, t in zip(window, self._rejection_texts, strict=True) if ts >= since]
        fatal = self._fatal
        if fatal is not None:
            n = max(len(recent), 1)
            return Reason(
                trigger=Trigger.REJECTIONS,
                state=TradingState.HALTED,
                detail=f"{n} in {window_s:.0f} s: {fatal[1]} (no retry can fix this)",
            )
        if len(window) < self._ks.max_rejections or ts_ns - window[0] > window_s * _NS_PER_S:
            return None
        texts = [t for t in self._rejection_texts if t]
        words = _most_common(texts)
        others = len({refusal_key(t) for t in texts}) - 1 if texts else 0
        if others > 0:
            words += f" (and {others} other text{'s' if others > 1 else ''})"
        every_fatal = (
            bool(texts)
            and len(texts) == len(window)
            and all(classify(t) in FATAL_WHEN_ALL for t in texts)
        )
        detail = f"{len(window)} in {window_s:.0f} s" + (f": {words}" if words else "")
        if every_fatal:
            detail += " on every order (no retry can fix this)"
        return Reason(
            trigger=Trigger.REJECTIONS,
            state=TradingState.HALTED if every_fatal else TradingState.PAUSED,
            detail=detail,
        )

    def _check_disconnected(self) -> Reason | None:
        if self.connected:
            return None
        return Reason(
            trigger=Trigger.DISCONNECTED, state=TradingState.PAUSED, detail="venue disconnected"
        )


def _most_common(texts: list[str]) -> str:
    """The text that came most often, counting texts that differ only in numbers as one (the
    latest wording; the latest among equals); "" for none."""
    keys = [refusal_key(t) for t in texts]
    best, best_n = "", 0
    for i in range(len(texts) - 1, -1, -1):
        n = keys.count(keys[i])
        if n > best_n:
            best, best_n = texts[i], n
    return best
