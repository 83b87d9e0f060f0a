"""State that survives a restart: the kill switch's latched halts and the UTC day's opening
equity, one small JSON file per account and market (``<network>-<account>-<asset>.json``).

Without it a restart forgets a latched HALT and re-bases the daily-loss limit at the equity
left after the loss, so restarting would be a way around both. The runtime loads the file at
start (a file that cannot be read or names another account is an error, never silently
ignored: that would forget a halt), restores the kill switch from it, and saves it whenever
what it holds changes: at once when a halt latches, at most once a second otherwise, and at the
end. A save is atomic (a temporary file in the same directory, synced, then renamed over the
old one), so a process killed mid-write leaves the previous state. ``market-maker reset`` (or
``run --reset-halt``) clears the halts, showing their reasons, and the day's baseline, which
the next start takes from the account's equity then (the operator accepts the loss).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from market_maker.errors import MarketMakerError
from market_maker.risk.kill_switch import HaltRecord, KillSwitchMemory

__all__ = ["SavedState", "StateError", "StateFile", "default_state_dir", "describe_halt"]

VERSION = 1


class StateError(MarketMakerError):
    """A state file that cannot be trusted (unreadable, malformed, another account's)."""


class SavedState(msgspec.Struct, frozen=True, kw_only=True):
    """The file's contents."""

    version: int = VERSION
    network: str
    account: str
    asset: str
    saved_at: str = ""
    """When it was written, ISO 8601 UTC."""
    kill_switch: KillSwitchMemory = msgspec.field(default_factory=KillSwitchMemory)
    last_reset: str = ""
    """When ``reset`` last cleared a halt, and what it cleared (an audit line)."""


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/market-maker``, else ``~/.local/state/market-maker``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "market-maker"


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso(ts_ns: int) -> str:
    if ts_ns <= 0:
        return "an earlier run"
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_halt(halt: HaltRecord) -> str:
    """``daily_loss: lost 612.00 USD today (limit 500.00), since 2026-12-07 15:04:05 UTC``."""
    return f"{halt.trigger}: {halt.detail}, since {_iso(halt.ts_ns)}"


class StateFile:
    """The state file of one account and market."""

    def __init__(self, directory: Path, *, network: str, account: str, asset: str) -> None:
        self.network = network
        self.account = account.lower()
        self.asset = asset.upper()
        self.path = Path(directory).expanduser() / f"{network}-{self.account}-{self.asset}.json"

    def load(self) -> SavedState | None:
        """What the file holds; None when there is none yet. StateError when it cannot be
        trusted (the message says how to look at it, and what deleting it forgets)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"state file {self.path}: cannot read: {exc.strerror}") from None
        try:
            saved = msgspec.json.decode(raw, type=SavedState)
        except msgspec.DecodeError as exc:
            raise StateError(
                f"state file {self.path} is not valid ({exc}); look at it, or delete it to start "
                "afresh (that forgets a latched halt and the day's opening equity)"
            ) from None
        if saved.version != VERSION:
            raise StateError(f"state file {self.path}: version {saved.version}, not {VERSION}")
        mine = (self.network, self.account, self.asset)
        theirs = (saved.network, saved.account.lower(), saved.asset.upper())
        if theirs != mine:
            raise StateError(
                f"state file {self.path} belongs to {' '.join(theirs)}, not {' '.join(mine)}"
            )
        return saved

    def save(self, memory: KillSwitchMemory, *, last_reset: str | None = None) -> None:
        """Write atomically: a temporary file beside it, synced, renamed over it."""
        if last_reset is None:
            old = self._load_quietly()
            last_reset = "" if old is None else old.last_reset
        state = SavedState(
            network=self.network,
            account=self.account,
            asset=self.asset,
            saved_at=_now_iso(),
            kill_switch=memory,
            last_reset=last_reset,
        )
        data = msgspec.json.format(msgspec.json.encode(state), indent=2) + b"\n"
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=directory)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            with contextlib.suppress(OSError):  # the rename itself, on filesystems that allow
                dfd = os.open(directory, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        except OSError as exc:
            raise StateError(f"state file {self.path}: cannot write: {exc.strerror}") from None

    def _load_quietly(self) -> SavedState | None:
        try:
            return self.load()
        except StateError:
            return None

    def reset(self) -> tuple[HaltRecord, ...]:
        """Clear the latched halts and the day's baseline; the halts cleared (none: nothing
        changed). The next start takes the account's equity as the day's opening."""
        saved = self.load()
        if saved is None or not saved.kill_switch.halts:
            return ()
        halts = saved.kill_switch.halts
        note = f"{_now_iso()} cleared " + "; ".join(f"{h.trigger}: {h.detail}" for h in halts)
        self.save(KillSwitchMemory(day=saved.kill_switch.day), last_reset=note)
        return halts
