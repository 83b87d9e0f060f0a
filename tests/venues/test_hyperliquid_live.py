"""Live trading against the trading loopback exchange, with its messages out of order:
the limit held at the venue while it binds, the engine's position equal to the venue's at the
end, no orders left, recovery from drops, the dead man's switch, the request budget."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from market_maker.config import AppConfig
from market_maker.engine import QuoteEngine
from market_maker.runtime import RunSummary, run_live
from market_maker.venues.hyperliquid.client import ClientConfig
from market_maker.venues.hyperliquid.fake_exchange import FakeHyperliquidExchange
from market_maker.venues.hyperliquid.signing import Signer
from market_maker.venues.hyperliquid.venue import AddressBudget, HyperliquidVenue
from tests.fakes.hyperliquid import FakeInThread, until
from tests.test_config import ROOT

pytestmark = pytest.mark.slow  # real sockets and wall-clock waits

KEY = "0x" + "ab" * 32
SIGNER = Signer(KEY, mainnet=True)
USER = "0x" + "c" * 40
LOT = 1e-5


def binding(cap: float = 0.03) -> AppConfig:
    config = AppConfig()
    return msgspec.structs.replace(
        config, risk=msgspec.structs.replace(config.risk, max_position_cap=cap)
    )


@dataclass
class Live:
    summary: RunSummary
    venue: HyperliquidVenue
    engine: QuoteEngine
    breaches: int = 0
    max_util: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


async def trade(
    fake: FakeHyperliquidExchange,
    duration_s: float,
    during: Callable[[Live], Awaitable[None]] | None = None,
    budget: AddressBudget | None = None,
    config: AppConfig | None = None,
    state_file: Any = None,
    account_interval_s: float = 60.0,
) -> Live:
    venue = HyperliquidVenue(
        "BTC",
        ClientConfig(url=fake.url),
        SIGNER,
        account=USER,
        budget=budget,
        account_interval_s=account_interval_s,
    )
    info = await venue.discover()
    engine = QuoteEngine(config or binding(), info.instrument)
    live = Live(summary=None, venue=venue, engine=engine)  # type: ignore[arg-type]

    async def watch() -> None:  # the limit against the venue's own position, every 5 ms
        while True:
            await asyncio.sleep(0.005)
            limit = engine.kill_switch.max_position(engine.mid)
            if limit > 0.0:
                live.max_util = max(live.max_util, abs(fake.position) / limit)
                if abs(fake.position) > limit + LOT * 1.000001:
                    live.breaches += 1

    watcher = asyncio.create_task(watch())
    side = asyncio.create_task(during(live)) if during else None
    # A run that cannot stop fails here rather than holding the suite (the shutdown once
    # waited for ever on a post whose frame the socket never took).
    live.summary = await asyncio.wait_for(
        run_live(
            venue,
            engine,
            duration_s=duration_s,
            out=io.StringIO(),
            tty=False,
            install_signals=False,
            state_file=state_file,
        ),
        duration_s + 60.0,
    )
    watcher.cancel()
    if side is not None:
        await side
    return live


def ends_flat(live: Live, fake: FakeHyperliquidExchange) -> None:
    assert fake.open_orders() == 0 and live.summary.open_orders == 0
    assert abs(live.summary.position - fake.position) < LOT / 2
    assert live.venue.final_open_orders == 0
    assert (
        live.venue.final_position is not None
        and abs(live.venue.final_position - fake.position) < LOT / 2
    )


def test_live_trading_with_disorderly_streams_holds_the_limit_and_ends_flat():
    async def main() -> None:
        async with FakeHyperliquidExchange(
            agent=SIGNER.address,
            user=USER,
            sweep_ticks=12.0,
            reorder_ms=60.0,
            duplicate_fills=0.1,
            buy_share=0.15,  # sellers dominate: our bids fill and the limit binds
        ) as fake:
            live = await trade(fake, 20.0)
        assert live.summary.fills >= 10
        assert live.breaches == 0 and live.max_util >= 0.8, (live.breaches, live.max_util)
        # The fake re-sent fills (when its draw did); none counted twice.
        assert live.venue.stats.duplicate_fills >= min(1, fake.duplicates_sent)
        assert "batchModify" in fake.actions and "cancelByCloid" in fake.actions
        ends_flat(live, fake)

    asyncio.run(main())


def test_after_drops_it_quotes_again_within_5_s_with_no_duplicated_or_orphaned_orders():
    recovered: list[float] = []

    async def faults(live: Live) -> None:
        fake = faults.fake  # type: ignore[attr-defined]
        venue, engine = live.venue, live.engine

        def quoting() -> bool:
            return engine.status().trading_state == "active" and fake.open_orders() > 0

        for clean in (True, False, False):
            await until(quoting, 10.0)
            await fake.drop(clean=clean)
            await until(lambda: not venue.client.connected, 2.0)
            recovered.append(await until(quoting, 10.0))
            await asyncio.sleep(1.0)
            ours = set(engine.orders.orders)
            at_venue = {o.cloid for o in fake.orders.values()}
            assert at_venue <= ours, at_venue - ours  # nothing orphaned at the venue
            # The quote and its backups a side, never doubled.
            assert len(at_venue) <= 2 * (1 + AppConfig().strategy.backup_levels)

    async def main() -> None:
        async with FakeHyperliquidExchange(
            agent=SIGNER.address, user=USER, sweep_ticks=12.0, reorder_ms=40.0
        ) as fake:
            faults.fake = fake  # type: ignore[attr-defined]
            live = await trade(fake, 22.0, faults)
        assert len(recovered) == 3 and max(recovered) < 5.0, recovered
        assert live.breaches == 0
        ends_flat(live, fake)

    asyncio.run(main())


def test_a_nearly_spent_budget_read_from_the_venue_pauses_quoting_and_is_never_exceeded():
    """An earlier process left 3 requests of the address budget (``userRateLimit``): the
    venue reads it at connect, sends no more orders than are left, and the venue never has
    to refuse one (before the read, a restarted process assumed a full 10,000)."""

    async def main() -> None:
        async with FakeHyperliquidExchange(
            agent=SIGNER.address, user=USER, trade_rate_per_s=0.01
        ) as fake:  # no fills: no volume frees requests
            # 3: fewer than the engine wants in 8 s (it keeps orders within a tolerance, so 12
            # were no longer short of what it sends, and its first cycle places 4: the GLFT
            # quote and its backup a side).
            fake.requests_used = 10_000 - 3
            live = await trade(fake, 8.0)
        assert live.venue.stats.budget_reads >= 1 and live.venue.stats.refused_locally > 0
        refused = [k for k in fake.budget_refused if k in ("order", "batchModify")]
        assert refused == [], refused  # never more than what was left
        sent = sum(1 for a in fake.actions if a in ("order", "batchModify"))
        assert sent <= 3 + 1  # what was left, plus one trickle request per 10 s
        counters = live.engine.status().order_counters
        assert counters.rejections + counters.refusals > 0  # the kill switch heard them
        ends_flat(live, fake)

    asyncio.run(main())


def test_the_dead_mans_switch_cancels_everything_when_the_process_is_killed(tmp_path):
    config = tmp_path / "dms.toml"
    config.write_text("[venue]\ndms_ahead_s = 6.0\ndms_refresh_s = 1.0\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HYPERLIQUID_PRIVATE_KEY": KEY,
        "HYPERLIQUID_ACCOUNT_ADDRESS": USER,
    }
    with FakeInThread.of(
        FakeHyperliquidExchange, agent=SIGNER.address, user=USER, traded_volume_usd=2_000_000.0
    ) as server:
        fake = server.fake
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "market_maker",
                "run",
                "--venue",
                "hyperliquid",
                "--ws-url",
                server.url,
                "--config",
                str(config),
                "--duration",
                "120",
                "--live",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while not (fake.open_orders() > 0 and fake.dms_ms) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert fake.open_orders() > 0 and fake.dms_ms, "never quoted with the switch armed"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        killed = time.monotonic()
        while fake.open_orders() > 0 and time.monotonic() - killed < 15:
            time.sleep(0.1)
        assert fake.open_orders() == 0 and fake.dms_triggers == 1
        assert time.monotonic() - killed <= 6.5


def test_the_cli_trades_live_and_ends_with_a_flat_check_and_never_shows_the_key(
    capsys, monkeypatch
):
    import json

    from market_maker.cli import main

    monkeypatch.setenv("HYPERLIQUID_PRIVATE_KEY", KEY)
    monkeypatch.setenv("HYPERLIQUID_ACCOUNT_ADDRESS", USER)
    with FakeInThread.of(
        FakeHyperliquidExchange, agent=SIGNER.address, user=USER, sweep_ticks=12.0, reorder_ms=30.0
    ) as server:
        code = main(
            [
                "run",
                "--venue",
                "hyperliquid",
                "--asset",
                "BTC",
                "--ws-url",
                server.url,
                "--duration",
                "8",
                "--live",
            ]
        )
        fake = server.fake
    out = capsys.readouterr()
    assert code == 0
    assert KEY[2:] not in out.out + out.err and "abababababababab" not in out.out + out.err
    events = [json.loads(line) for line in out.out.splitlines() if line.startswith("{")]
    check = next(e for e in events if e["event"] == "final_check")
    assert check["ok"] and check["venue_open_orders"] == 0
    assert fake.open_orders() == 0
    # One line at start: network, account, asset and the limits derived from its equity.
    start = [line for line in out.err.splitlines() if line.startswith("LIVE ")]
    assert len(start) == 1, out.err
    assert start[0].startswith(f"LIVE mainnet {USER} BTC: equity 25,000.00 USD, max position ")
    assert "daily loss 500 USD" in start[0]
    assert "order" in fake.actions


def test_a_key_in_the_environment_without_live_places_no_order(capsys, monkeypatch):
    """The README's first command with a key set: it paper trades, and says so."""
    import json

    from market_maker.cli import main

    monkeypatch.setenv("HYPERLIQUID_PRIVATE_KEY", KEY)
    monkeypatch.setenv("HYPERLIQUID_ACCOUNT_ADDRESS", USER)
    with FakeInThread.of(
        FakeHyperliquidExchange, agent=SIGNER.address, user=USER, sweep_ticks=12.0
    ) as server:
        code = main(["run", "--venue", "hyperliquid", "--ws-url", server.url, "--duration", "4"])
        fake = server.fake
    out = capsys.readouterr()
    assert code == 0
    assert fake.actions == [] and fake.refused == [] and fake.fills == []
    assert fake.stats.posts > 0  # it did talk to the venue (info requests)
    assert "only --live sends orders" in out.err
    events = [json.loads(line) for line in out.out.splitlines() if line.startswith("{")]
    names = {e["event"] for e in events}
    assert "paper_trading" in names and "live_trading" not in names
    stopped = next(e for e in events if e["event"] == "stopped")
    assert stopped["quote_cycles"] > 0  # it quoted, in its local book


def test_live_on_mainnet_needs_the_flag_and_live_needs_a_key(capsys, monkeypatch, tmp_path):
    from market_maker.cli import main

    config = tmp_path / "live.toml"
    config.write_text("[venue]\nlive = true\n")
    monkeypatch.setenv("HYPERLIQUID_PRIVATE_KEY", KEY)
    with FakeInThread.of(FakeHyperliquidExchange, agent=SIGNER.address, user=USER) as server:
        url = server.url
        args = ["run", "--venue", "hyperliquid", "--ws-url", url, "--duration", "1"]
        assert main([*args, "--config", str(config)]) == 1
        err = capsys.readouterr().err
        assert "refusing to trade real money without --live" in err
        with pytest.raises(SystemExit):
            main([*args, "--live", "--paper"])
        assert "not allowed with argument" in capsys.readouterr().err
        monkeypatch.delenv("HYPERLIQUID_PRIVATE_KEY")
        assert main([*args, "--live"]) == 1
        assert "live trading needs the API wallet's key" in capsys.readouterr().err
        fake = server.fake
    assert fake.stats.connections == 0 and fake.actions == []


def test_a_position_over_the_limit_is_taken_back_with_an_ioc_escalation():
    from market_maker.config import OrdersConfig

    config = msgspec.structs.replace(binding(0.02), orders=OrdersConfig(escalate_after_s=3.0))

    async def main() -> None:
        async with FakeHyperliquidExchange(
            agent=SIGNER.address, user=USER, reorder_ms=30.0, trade_rate_per_s=0.01
        ) as fake:  # too quiet for the passive quotes to reduce anything
            fake.position_lots = 3000  # 0.03 held (an earlier process), the cap is 0.02
            live = await trade(fake, 9.0, config=config)
        assert live.engine.counters.escalations >= 1
        assert 0 <= fake.position <= 0.02 + LOT  # taken back, never flipped
        ends_flat(live, fake)

    asyncio.run(main())


def test_the_venues_own_budget_refusals_are_survived():
    """The budget read at connect is generous; then another process on the address spends
    it, so the venue's refusals come first: they pause and back off."""

    async def spend(live: Live) -> None:
        fake = spend.fake  # type: ignore[attr-defined]
        await until(lambda: live.venue.stats.budget_reads >= 1, 10.0)
        fake.address_budget = float(fake.requests_used + 2)  # spent, but for two

    async def main() -> None:
        async with FakeHyperliquidExchange(agent=SIGNER.address, user=USER) as fake:
            spend.fake = fake  # type: ignore[attr-defined]
            live = await trade(fake, 8.0, spend)
        assert any(r.startswith("Too many cumulative requests") for r in fake.refused)
        counters = live.engine.status().order_counters
        assert counters.rejections + counters.refusals > 0 and counters.backoffs > 0
        assert len(fake.refused) < 40, len(fake.refused)  # backing off, not hammering (422 before)
        ends_flat(live, fake)

    asyncio.run(main())


def test_a_stalled_event_loop_has_its_orders_cancelled_by_the_watchdog():
    """The dead man's switch is refused (no volume): the watchdog thread is the fallback."""
    seen: dict[str, float] = {}

    async def stall(live: Live) -> None:
        fake = stall.fake  # type: ignore[attr-defined]
        await until(lambda: fake.open_orders() > 0, 10.0)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 9.0:  # the whole event loop is blocked here
            if fake.open_orders() == 0 and "cancelled" not in seen:
                seen["cancelled"] = time.monotonic() - t0
            time.sleep(0.05)

    async def main(server: FakeInThread) -> Live:
        stall.fake = server.fake  # type: ignore[attr-defined]
        return await trade(server.fake, 14.0, stall)

    with FakeInThread.of(FakeHyperliquidExchange, agent=SIGNER.address, user=USER) as server:
        live = asyncio.run(main(server))
        fake = server.fake
    assert live.venue.watchdog.fired >= 1, live.venue.watchdog.last_error
    assert "cancelled" in seen and seen["cancelled"] <= 5.0 + 2.0, seen
    assert not live.venue.stats.dms_available
    ends_flat(live, fake)


def test_an_action_held_past_its_deadline_is_refused_by_the_venue_not_done_late():
    """``expiresAfter``: blocks stall (``hold``) past the place's deadline; the venue refuses
    it as expired, nothing rests, and the engine is told REJECTED (its exposure is freed by
    the venue's word, not by a guess)."""
    from market_maker.model import AckStatus, BookUpdate, OrderAck, Place, Side

    async def main() -> None:
        async with FakeHyperliquidExchange(agent=SIGNER.address, user=USER) as fake:
            venue = HyperliquidVenue(
                "BTC", ClientConfig(url=fake.url), SIGNER, account=USER, request_expiry_s=0.3
            )
            info = await venue.discover()
            await venue.connect()
            events = venue.events()
            bid = None
            while bid is None:
                ev = await asyncio.wait_for(anext(events), 5.0)
                if isinstance(ev, BookUpdate) and ev.bids:
                    bid = ev.bids[0][0]
            tick = info.instrument.tick_size
            price = round(round(bid / tick) * tick - 50 * tick, 6)
            fake.hold()
            place = Place(
                cloid="0x" + "7" * 32, side=Side.BUY, price=price, size=0.001, request_id=7
            )
            await venue.submit([place])
            await until(lambda: fake.queued() == 1, 5.0)
            await asyncio.sleep(0.6)  # the block is slower than the deadline
            fake.hold(False)
            ack = None
            while ack is None:
                ev = await asyncio.wait_for(anext(events), 5.0)
                if isinstance(ev, OrderAck) and ev.request_id == 7:
                    ack = ev
            assert ack.status == AckStatus.REJECTED and "expired" in ack.reason
            assert fake.open_orders() == 0 and "order" not in fake.actions
            await venue.close()

    asyncio.run(main())


def test_a_trickled_batch_is_charged_so_the_next_waits_for_the_next_trickle():
    """Once spent, the venue serves one request every 10 s and counts it like any other: a
    batch of 4 sent on the trickle with 3 left puts the venue 1 over, so a batch of 2 right
    after would be refused there and must be refused here first."""
    now = [100.0]
    budget = AddressBudget(3.0, clock=lambda: now[0])
    assert budget.take(4)  # on the trickle
    assert not budget.take(2)  # the venue would refuse it: 3 + 2 over
    assert not budget.take(1)
    now[0] += 10.0
    assert budget.take(1)  # the next trickle
    budget.on_traded(10.0)  # 10 USDC traded free 10 requests: 3 - 4 - 1 + 10 = 8 left
    assert budget.left == pytest.approx(8.0) and budget.take(8) and not budget.take(1)


def refusal_evidence(live: Live, logs: list[dict[str, Any]]) -> tuple[str, str, str]:
    """The kill switch's reason, the board's text and the metrics, after a run."""
    from market_maker.metrics import CycleHistogram, render_metrics
    from market_maker.runtime import StatusBoard

    status = live.engine.status()
    reason = next(r for r in status.reasons if r.startswith("rejections: "))
    board = "\n".join(StatusBoard(live.engine, io.StringIO(), tty=False).render())
    metrics = render_metrics(live.engine, CycleHistogram(), venue="hyperliquid")
    return reason, board, metrics


def test_an_unknown_wallet_halts_with_the_venues_words_everywhere():
    """The venue knows no such API wallet: every action is refused with its text. That text
    reaches the kill switch's reason, the log (one line per text, counted), the board and the
    metrics, and the run halts (no retry can fix it) instead of pausing for ever."""
    from structlog.testing import capture_logs

    other = "0x" + "d" * 40  # the fake's agent: not ours

    async def main() -> tuple[Live, list[Any], list[str]]:
        async with FakeHyperliquidExchange(agent=other, user=USER, sweep_ticks=12.0) as fake:
            with capture_logs() as logs:
                live = await trade(fake, 4.0)
            return live, logs, fake.refused

    live, logs, refused = asyncio.run(main())
    words = f"User or API Wallet {SIGNER.address.lower()} does not exist."
    assert refused and all(r == words for r in refused)
    status = live.engine.status()
    assert status.trading_state == "halted"
    reason, board, metrics = refusal_evidence(live, logs)
    assert reason.endswith(f": {words} (no retry can fix this)"), reason
    assert reason.startswith("rejections: ") and " in 60 s: " in reason
    lines = [e for e in logs if e["event"] == "venue_refused"]
    assert lines and {e["text"] for e in lines} == {words}
    assert lines[-1]["count"] == status.refusals[0].count >= 1
    assert len(lines) <= 3  # one line per text, with a count: not one per refusal
    assert status.refusals[0].refusal_class == "unknown_account"
    assert "does not exist." in board and "HALTED" in board
    series = {
        re.search(r'reason_class="(\w+)"', line)[1]: float(line.rsplit(" ", 1)[1])  # type: ignore[index]
        for line in metrics.splitlines()
        if line.startswith("mm_venue_refusals_total{")
    }
    assert series["unknown_account"] == status.refusals_by_class["unknown_account"] >= 1
    assert series["margin"] == 0.0
    # Halted: it stopped placing. A paused run would have retried every backoff.
    assert len(refused) <= 4, refused


def test_insufficient_margin_on_every_order_halts_with_that_text():
    async def main() -> Live:
        async with FakeHyperliquidExchange(
            agent=SIGNER.address, user=USER, no_margin=True, sweep_ticks=12.0
        ) as fake:
            return await trade(fake, 5.0)

    live = asyncio.run(main())
    status = live.engine.status()
    assert status.trading_state == "halted", status.reasons
    reason = next(r for r in status.reasons if r.startswith("rejections: "))
    assert reason.startswith("rejections: 3 in 60 s: Insufficient margin to place order.")
    assert reason.endswith("on every order (no retry can fix this)"), reason
    assert status.refusals_by_class == {"margin": status.refusals[0].count}


def test_a_halted_run_restarted_is_still_halted_until_reset(tmp_path, capsys):
    """A daily-loss halt latched, the process stopped: the next process starts halted with the
    reason, quotes nothing, and only ``market-maker reset`` clears it."""
    from market_maker.cli import main
    from market_maker.state import StateFile

    state = StateFile(tmp_path, network="mainnet", account=USER, asset="BTC")

    async def lose(live: Live) -> None:
        fake = lose.fake  # type: ignore[attr-defined]
        await until(lambda: fake.open_orders() > 0, 10.0)
        fake.cash -= 650.0  # the account loses 650 USD (the limit is 500)
        await until(lambda: live.engine.trading_state.label == "halted", 10.0)

    async def main_() -> tuple[Live, Live, int]:
        async with FakeHyperliquidExchange(agent=SIGNER.address, user=USER) as fake:
            lose.fake = fake  # type: ignore[attr-defined]
            first = await trade(fake, 6.0, lose, state_file=state, account_interval_s=1.0)
            placed = sum(1 for a in fake.actions if a in ("order", "batchModify"))
            fake.cash += 650.0  # whatever the account does now, the halt stays latched
            second = await trade(fake, 3.0, state_file=state, account_interval_s=1.0)
            after = sum(1 for a in fake.actions if a in ("order", "batchModify"))
            return first, second, after - placed

    first, second, placed_after = asyncio.run(main_())
    assert first.summary.trading_state == "halted"
    reason = next(r for r in first.engine.status().reasons if r.startswith("daily_loss"))
    assert placed_after == 0  # the restarted run never quoted
    assert second.summary.trading_state == "halted"
    assert reason in second.engine.status().reasons  # the same words, after the restart
    saved = state.load()
    assert saved is not None and [h.trigger for h in saved.kill_switch.halts] == ["daily_loss"]
    # market-maker reset shows the reason and clears it.
    config = tmp_path / "state.toml"
    config.write_text(f'[venue]\nstate_dir = "{tmp_path}"\n')
    assert main(["reset", "--asset", "BTC", "--address", USER, "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "cleared the halt" in out and "daily_loss: lost 650.00 USD today" in out
    saved = state.load()
    assert saved is not None and saved.kill_switch.halts == ()
    assert saved.kill_switch.day_start_equity is None  # the next start re-bases
    assert "cleared daily_loss" in saved.last_reset
    assert main(["reset", "--asset", "BTC", "--address", USER, "--config", str(config)]) == 0
    assert "not halted; nothing to reset" in capsys.readouterr().out


def test_a_loss_taken_before_a_restart_still_counts_toward_the_daily_limit(tmp_path):
    """300 USD lost, restart, 250 more: 550 over the day's opening halts (limit 500); without
    the state file the second run would count only the 250."""
    from market_maker.state import StateFile

    state = StateFile(tmp_path, network="mainnet", account=USER, asset="BTC")

    async def lose(amount: float) -> Callable[[Live], Awaitable[None]]:
        async def during(live: Live) -> None:
            fake = during.fake  # type: ignore[attr-defined]
            await until(lambda: live.engine.kill_switch.account_value is not None, 10.0)
            fake.cash -= amount

        return during

    async def main_() -> tuple[Live, Live]:
        async with FakeHyperliquidExchange(agent=SIGNER.address, user=USER) as fake:
            first_loss = await lose(300.0)
            first_loss.fake = fake  # type: ignore[attr-defined]
            first = await trade(fake, 4.0, first_loss, state_file=state, account_interval_s=1.0)
            second_loss = await lose(250.0)
            second_loss.fake = fake  # type: ignore[attr-defined]
            second = await trade(fake, 4.0, second_loss, state_file=state, account_interval_s=1.0)
            return first, second

    first, second = asyncio.run(main_())
    assert first.summary.trading_state == "halted"  # the shutdown's halt only
    assert not any(r.startswith("daily_loss") for r in first.engine.status().reasons)
    saved_day = first.engine.kill_switch.day_start_equity
    assert saved_day is not None and abs(saved_day - 25_000.0) < 1.0
    assert second.engine.kill_switch.day_start_equity == saved_day  # kept across the restart
    reasons = second.engine.status().reasons
    daily = [r for r in reasons if r.startswith("daily_loss: lost ")]
    assert daily, reasons
    lost = float(daily[0].split()[2])
    assert 530.0 < lost < 570.0, lost  # both losses (and the few fills' PnL), not the 250


def test_the_cli_starts_halted_after_a_latched_halt_and_reset_halt_clears_it(capsys, monkeypatch):
    import os
    from pathlib import Path

    from market_maker.cli import main
    from market_maker.risk import KillSwitch
    from market_maker.state import StateFile

    ks = KillSwitch(AppConfig())
    ks.halt("operator: venue maintenance")
    state = StateFile(
        Path(os.environ["XDG_STATE_HOME"]) / "market-maker",
        network="mainnet",
        account=USER,
        asset="BTC",
    )
    state.save(ks.memory())
    monkeypatch.setenv("HYPERLIQUID_PRIVATE_KEY", KEY)
    monkeypatch.setenv("HYPERLIQUID_ACCOUNT_ADDRESS", USER)
    with FakeInThread.of(
        FakeHyperliquidExchange, agent=SIGNER.address, user=USER, sweep_ticks=12.0
    ) as server:
        args = ["run", "--venue", "hyperliquid", "--ws-url", server.url, "--live"]
        assert main([*args, "--duration", "3"]) == 0
        err = capsys.readouterr().err
        assert "HALTED by an earlier run: manual: operator: venue maintenance" in err
        assert f"market-maker reset --asset BTC --address {USER}" in err
        assert "order" not in server.fake.actions
        assert main([*args, "--duration", "4", "--reset-halt"]) == 0
        err = capsys.readouterr().err
        assert "cleared the halt an earlier run latched" in err and "venue maintenance" in err
        assert "order" in server.fake.actions
