"""Command line: ``market-maker <command>`` (also ``python -m market_maker``).

Commands: ``run`` (the engine live: simulator, replay, or Hyperliquid paper or live trading),
``record`` (live market data to a capture), ``backtest``, ``import`` and ``store ls`` (the
market-data store), ``calibrate``, ``limits`` (derive
the position limits from a config and account figures), ``check-config FILE`` and
``init-config``. Options are checked before anything runs; a bad config prints one line naming
the file, the field and the reason, and exits with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from market_maker import __version__
from market_maker.config import (
    STRATEGY_KINDS,
    AppConfig,
    default_config_text,
    load_config,
    parse_config,
    with_strategy,
)
from market_maker.errors import ConfigError, MarketMakerError
from market_maker.risk.limits import (
    BindingLimit,
    PositionLimits,
    confidence_from_samples,
    horizon_s,
    position_limits,
)

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0.0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number: {text!r}")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite: {text!r}")
    return value


def _nonnegative(text: str) -> float:
    value = _finite(text)
    if value < 0.0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535 (got {value})")
    return value


def _port_or_zero(text: str) -> int:
    return 0 if text.strip() == "0" else _port(text)


def _unit_interval(text: str) -> float:
    value = _finite(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text!r}")
    return value


SIM_SCENARIOS = (
    "calm",
    "volatile",
    "calm-uninformed",
    "volatile-uninformed",
    "trend",
    "cascade",
)


def _add_config_and_strategy(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML config (default: built-in defaults)")
    parser.add_argument("--strategy", choices=STRATEGY_KINDS, help="override [strategy] kind")


def _add_instrument_flags(parser: argparse.ArgumentParser) -> None:
    """Exchange rules for a capture's symbol, over the shipped table and ``[instrument]``."""
    group = parser.add_argument_group("instrument (default: the shipped table for the symbol)")
    group.add_argument("--tick-size", type=_positive, help="price step")
    group.add_argument("--lot-size", type=_positive, help="size step, contracts")
    group.add_argument("--min-notional", type=_nonnegative, help="minimum order value")
    group.add_argument("--sz-decimals", type=int, help="Hyperliquid size decimals")
    group.add_argument(
        "--market",
        choices=("binance-usdm", "binance-coinm", "binance-spot", "hyperliquid"),
        help="the capture's market when its lines cannot tell [[instrument] market]",
    )
    group.add_argument(
        "--contract-size",
        type=_positive,
        help="base units per contract (inverse: USD per contract) [[instrument] contract_size]",
    )
    group.add_argument(
        "--maker-fee-bps", type=float, help="maker fee, bp of USD value (negative: rebate)"
    )
    group.add_argument("--taker-fee-bps", type=float, help="taker fee, bp of USD value")
    group.add_argument(
        "--funding-rate",
        type=float,
        help="backtests: funding rate per funding interval, a fraction (positive: longs pay) "
        "[[funding] rate]",
    )


def _add_hyperliquid_flags(group: Any) -> None:
    group.add_argument("--ws-url", help="websocket endpoint [[venue] ws_url, else mainnet]")
    group.add_argument("--testnet", action="store_true", help="use Hyperliquid's testnet")


def _client_config(config: AppConfig, args: argparse.Namespace) -> Any:
    from market_maker.venues.hyperliquid.client import MAINNET_WS, TESTNET_WS, ClientConfig

    venue = config.venue
    testnet = args.testnet or venue.testnet
    url = args.ws_url or venue.ws_url or (TESTNET_WS if testnet else MAINNET_WS)
    if not url.startswith(("ws://", "wss://")):
        raise MarketMakerError(f"--ws-url must start with ws:// or wss:// (got {url!r})")
    return ClientConfig(
        url=url,
        ping_interval_s=venue.ping_interval_s,
        pong_timeout_s=venue.pong_timeout_s,
        silence_ping_s=venue.silence_ping_s,
    )


def _with_instrument(config: AppConfig, args: argparse.Namespace) -> AppConfig:
    """``config`` with the instrument flags given on the command line applied."""
    flags = {
        name: getattr(args, name)
        for name in (
            "tick_size",
            "lot_size",
            "min_notional",
            "sz_decimals",
            "market",
            "contract_size",
            "maker_fee_bps",
            "taker_fee_bps",
        )
        if getattr(args, name, None) is not None
    }
    rate = getattr(args, "funding_rate", None)
    if rate is not None:
        if not -0.1 <= rate <= 0.1:
            raise MarketMakerError("--funding-rate: must be between -0.1 and 0.1 (a fraction)")
        funding = msgspec.structs.replace(config.funding, rate=rate)
        config = msgspec.structs.replace(config, funding=funding)
    for name in ("maker_fee_bps", "taker_fee_bps"):
        if name in flags and not -100.0 <= flags[name] <= 100.0:
            raise MarketMakerError(f"--{name.replace('_', '-')}: must be between -100 and 100")
    if not flags:
        return config
    if "sz_decimals" in flags and not 0 <= flags["sz_decimals"] <= 8:
        raise MarketMakerError("--sz-decimals: must be between 0 and 8")
    instrument = msgspec.structs.replace(config.instrument, **flags)
    return msgspec.structs.replace(config, instrument=instrument)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="market-maker",
        description="Market-making quoting engine with first-principles position limits.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lim = sub.add_parser(
        "limits",
        help="show the position limits a config derives for an account",
        description="Derive every position limit (leverage, volatility, budget), the binding "
        "one and the resulting contracts at a mid price.",
    )
    lim.add_argument("--config", type=Path, help="TOML config (default: built-in defaults)")
    lim.add_argument(
        "--account-value", type=_finite, default=10_000.0, help="account equity, USD [10000]"
    )
    lim.add_argument("--balance", type=_finite, help="balance for the budget limit [account value]")
    lim.add_argument(
        "--sigma",
        type=_finite,
        help="measured volatility, fraction per sqrt second [the config's sigma_prior]",
    )
    lim.add_argument(
        "--samples",
        type=int,
        help="volatility samples behind --sigma; sets the confidence [fully trusted if --sigma]",
    )
    lim.add_argument(
        "--confidence", type=_unit_interval, help="confidence in --sigma, 0..1 [from --samples]"
    )
    lim.add_argument(
        "--trade-rate",
        type=_finite,
        help="trades per second, sets T = min(1/rate, max_horizon_s) [the config's Hawkes mu]",
    )
    lim.add_argument("--mid", type=_positive, default=100_000.0, help="mid price, USD [100000]")
    lim.add_argument("--json", action="store_true", help="print one JSON object")
    lim.set_defaults(func=_cmd_limits)

    chk = sub.add_parser("check-config", help="validate a config file")
    chk.add_argument("file", type=Path)
    chk.set_defaults(func=_cmd_check_config)

    run = sub.add_parser(
        "run",
        help="run the engine live (default: against the built-in simulated exchange)",
        description="Run the engine in wall-clock time with a live status; Ctrl-C cancels "
        "every order, waits for the acknowledgements and prints a summary.",
    )
    run.add_argument("--asset", default="BTC", help="asset to quote [BTC]")
    run.add_argument(
        "--venue", choices=["sim", "replay", "hyperliquid"], default="sim", help="[sim]"
    )
    run.add_argument(
        "--scenario", choices=SIM_SCENARIOS, default="calm", help="simulator scenario [calm]"
    )
    run.add_argument("--data", type=Path, help="capture file for --venue replay")
    _add_config_and_strategy(run)
    _add_instrument_flags(run)
    run.add_argument("--duration", type=_positive, help="stop after this many seconds")
    run.add_argument("--speed", type=_positive, default=1.0, help="market time per wall second [1]")
    run.add_argument("--seed", type=int, default=1, help="simulator seed [1]")
    run.add_argument(
        "--metrics-port", type=_port, help="serve Prometheus metrics on 127.0.0.1:PORT/metrics"
    )
    live = run.add_argument_group("hyperliquid")
    mode = live.add_mutually_exclusive_group()
    mode.add_argument(
        "--paper",
        action="store_true",
        help="paper trade on the live market: orders rest in a local book (the default)",
    )
    mode.add_argument(
        "--live",
        action="store_true",
        help="trade with real orders, signed with HYPERLIQUID_PRIVATE_KEY or [venue] "
        "private_key_file (a key alone never trades)",
    )
    _add_hyperliquid_flags(live)
    live.add_argument(
        "--address", help="watch this account read-only; paper trading starts from its value"
    )
    live.add_argument(
        "--reset-halt",
        action="store_true",
        help="live: clear a halt an earlier run latched (shows its reason) before trading",
    )
    run.set_defaults(func=_cmd_run)

    rst = sub.add_parser(
        "reset",
        help="clear a live account's latched halt (shows its reason)",
        description="A live run that halted (daily loss, drawdown, a refusal no retry can fix, "
        "...) stays halted across restarts until this clears it. It shows the reason, clears "
        "it, and lets the next start take the account's equity as the day's opening.",
    )
    rst.add_argument("--asset", default="BTC", help="the market [BTC]")
    rst.add_argument(
        "--address", help="the account [[venue] address, HYPERLIQUID_ACCOUNT_ADDRESS, the key's]"
    )
    rst.add_argument("--testnet", action="store_true", help="the testnet account")
    rst.add_argument("--config", type=Path, help="TOML config ([venue] state_dir)")
    rst.set_defaults(func=_cmd_reset)

    rec = sub.add_parser(
        "record",
        help="record live market data to a capture file (replays with backtest --data)",
        description="Write every market-data frame of one asset, as received, to a gzip "
        "capture (<ns> <json> lines) that stays readable if the recorder is killed.",
    )
    rec.add_argument("--venue", choices=["hyperliquid"], default="hyperliquid")
    rec.add_argument("--asset", default="BTC", help="asset to record [BTC]")
    rec.add_argument("--out", type=Path, required=True, help="capture file to write (.gz)")
    rec.add_argument("--force", action="store_true", help="overwrite an existing file")
    rec.add_argument("--duration", type=_positive, help="stop after this many seconds")
    rec.add_argument("--config", type=Path, help="TOML config ([venue] settings)")
    _add_hyperliquid_flags(rec)
    rec.set_defaults(func=_cmd_record)

    bt = sub.add_parser(
        "backtest",
        help="run the engine against a simulated market or recorded data",
        description="Run the engine in virtual time against a scenario of the built-in "
        "simulator, a recorded capture or days of a market-data store, and print a summary.",
    )
    src = bt.add_mutually_exclusive_group()
    src.add_argument(
        "--scenario", choices=(*SIM_SCENARIOS, "as2008"), help="market to simulate [calm]"
    )
    src.add_argument("--data", type=Path, help="a capture file (<ns> <json> lines, gzip)")
    src.add_argument(
        "--store", help="a market-data store (folder or fsspec URL; see market-maker import)"
    )
    store_range = bt.add_argument_group("with --store")
    store_range.add_argument("--symbol", help="the symbol to replay (as store ls lists it)")
    store_range.add_argument(
        "--from", dest="from_day", type=_day, help="first day, YYYY-MM-DD [the first stored]"
    )
    store_range.add_argument(
        "--to", dest="to_day", type=_day, help="last day (included) [the last stored]"
    )
    store_range.add_argument("--store-venue", help="the venue, when the symbol is on several")
    store_range.add_argument(
        "--segments",
        help="cut the range into independent segments (day, hour, 6h, 30m, ...) run in "
        "parallel and merged; each starts flat after its warm-up [day with --workers or "
        "--cluster]",
    )
    store_range.add_argument(
        "--warmup",
        type=_nonnegative,
        help="with --segments: seconds before each segment the engine reads the market "
        "without quoting or counting [600]",
    )
    store_range.add_argument(
        "--workers", type=int, help="with --segments: local processes [every core]"
    )
    store_range.add_argument(
        "--cluster", help="with --segments: a Dask scheduler, e.g. tcp://10.0.0.5:8786"
    )
    _add_config_and_strategy(bt)
    _add_instrument_flags(bt)
    bt.add_argument("--compare", help="comma-separated strategies to run on the same seed")
    bt.add_argument("--seed", type=int, default=1, help="random seed [1]")
    bt.add_argument(
        "--paths", type=_count, default=1000, help="as2008: Monte-Carlo paths per strategy [1000]"
    )
    bt.add_argument("--duration", type=_positive, help="simulated seconds [scenario's]")
    bt.add_argument(
        "--feed-latency-ms",
        type=_nonnegative,
        help="market data's latency to the engine [the capture's own stamps, else 25; "
        "a scenario's own]",
    )
    bt.add_argument("--json", action="store_true", help="print one JSON object")
    bt.add_argument(
        "--report",
        type=Path,
        help="write summary.json, recording.json, fills.csv and backtest.png to this directory",
    )
    bt.set_defaults(func=_cmd_backtest)

    imp = sub.add_parser(
        "import",
        help="write captures into a market-data store (Parquet by venue, symbol and day)",
        description="Decode captures with the replay's own decoder and write their events and "
        "depth-book changes as Parquet, one file per source and UTC day, under "
        "venue=/symbol=/date= folders. Importing a capture again replaces its files.",
    )
    imp.add_argument(
        "sources",
        nargs="+",
        type=Path,
        help="captures (<ns> <json> lines, gzip), Hyperliquid archive l2Book files (.lz4), "
        "Tardis.dev CSV (incremental_book_L2, trades, book_snapshot_25; binance-futures)",
    )
    imp.add_argument("--store", required=True, help="the store: a folder or an fsspec URL")
    _add_instrument_flags(imp)
    imp.add_argument("--config", type=Path, help="TOML config ([instrument] overrides)")
    imp.set_defaults(func=_cmd_import)

    st = sub.add_parser("store", help="look into a market-data store")
    st_sub = st.add_subparsers(dest="store_command", required=True)
    ls = st_sub.add_parser(
        "ls", help="list the symbols and days a store holds, with rows and bytes"
    )
    ls.add_argument("store", help="the store: a folder or an fsspec URL")
    ls.add_argument("--json", action="store_true", help="print one JSON list")
    ls.set_defaults(func=_cmd_store_ls)

    init = sub.add_parser("init-config", help="write the commented default config")
    init.add_argument("-o", "--output", default="-", help="file to write, '-' for stdout [-]")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=_cmd_init_config)

    cal = sub.add_parser(
        "calibrate",
        help="fit Hawkes, fill intensity and volatility from a capture",
        description="Fit the engine's market parameters from a capture and print them with "
        "95 % intervals; -o writes a config overlay that --config accepts.",
    )
    cal.add_argument("--data", type=Path, required=True, help="a capture file")
    cal.add_argument("--config", type=Path, help="TOML config (instrument rules, estimator grids)")
    cal.add_argument("-o", "--output", type=Path, help="write the overlay here")
    cal.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing overlay, and write into it the fits the capture does not "
        "pin down (marked in the table) as well",
    )
    cal.add_argument("--json", action="store_true", help="print one JSON object")
    _add_instrument_flags(cal)
    cal.set_defaults(func=_cmd_calibrate)

    fx = sub.add_parser(
        "fake-exchange",
        help="start a loopback Hyperliquid exchange on 127.0.0.1 (try everything offline)",
        description="A Hyperliquid exchange on 127.0.0.1: a random-walk market (l2Book, bbo, "
        "trades) and one trading account that checks signatures and nonces, commits actions "
        "in blocks and fills our orders against its trades. Point run or record at the "
        "--ws-url it prints. Ctrl-C stops it.",
    )
    fx.add_argument("--port", type=_port_or_zero, default=0, help="port to listen on [any free]")
    fx.add_argument("--asset", default="BTC", help="the coin it lists (with ETH) [BTC]")
    fx.add_argument("--mid", type=_positive, default=100_000.0, help="starting mid [100000]")
    fx.add_argument("--tick", type=_positive, default=1.0, help="price step of its book [1]")
    fx.add_argument("--sz-decimals", type=int, default=5, help="size decimals [5]")
    fx.add_argument(
        "--trade-rate", type=_positive, default=20.0, help="public trades per second [20]"
    )
    fx.add_argument(
        "--sweep-ticks", type=_positive, default=12.0, help="mean ticks a trade sweeps [12]"
    )
    fx.add_argument(
        "--buy-share", type=_unit_interval, default=0.5, help="share of buy aggressors [0.5]"
    )
    fx.add_argument(
        "--account-value", type=_positive, default=25_000.0, help="account equity, USD [25000]"
    )
    fx.add_argument("--seed", type=int, default=1, help="random seed [1]")
    fx.add_argument("--duration", type=_positive, help="stop after this many seconds")
    acct = fx.add_argument_group("the trading account")
    acct.add_argument(
        "--agent",
        help="take only this API wallet's signatures [any key's]; others are "
        "refused with the venue's 'User or API Wallet ... does not exist.'",
    )
    acct.add_argument("--user", help="the account's address [the first one that subscribes]")
    acct.add_argument("--testnet", action="store_true", help="expect testnet signatures")
    acct.add_argument(
        "--traded-volume",
        type=_nonnegative,
        default=0.0,
        help="the account's traded USD; 1000000 unlocks the dead man's switch [0]",
    )
    acct.add_argument(
        "--address-budget", type=_nonnegative, default=10_000.0, help="request budget [10000]"
    )
    faults = fx.add_argument_group("faults")
    faults.add_argument(
        "--block-ms", type=_nonnegative, default=70.0, help="block interval, 0: none [70]"
    )
    faults.add_argument(
        "--reorder-ms",
        type=_nonnegative,
        default=0.0,
        help="delay replies and user streams at random up to this, each stream on its own [0]",
    )
    faults.add_argument(
        "--duplicate-fills", type=_unit_interval, default=0.0, help="re-send a fill, 0..1 [0]"
    )
    faults.add_argument(
        "--server-skew-ms", type=int, default=0, help="info clock minus block clock [0]"
    )
    faults.add_argument("--slow-ms", type=_nonnegative, default=0.0, help="delay every frame")
    faults.add_argument("--drop-every", type=_positive, help="reset every socket each S seconds")
    faults.add_argument(
        "--no-margin", action="store_true", help="refuse every order: insufficient margin"
    )
    fx.set_defaults(func=_cmd_fake_exchange)

    sw = sub.add_parser(
        "sweep",
        help="tune a config: many settings x scenarios x seeds x captures, ranked",
        description="Run every point of a grid file's [params] (dotted config paths) on "
        "scenarios and captures, rank them by a risk-adjusted PnL under hard constraints, "
        "check the best on held-back seeds and later data, and write points.csv, pareto.png "
        "and best.toml. Options override the grid file's [sweep] table; an interrupted sweep "
        "resumes from --out.",
    )
    sw.add_argument("--grid", type=Path, required=True, help="the grid file (TOML)")
    sw.add_argument(
        "--scenarios",
        help="comma-separated: calm,volatile,calm-uninformed,volatile-uninformed,trend,cascade",
    )
    sw.add_argument("--data", type=Path, action="append", help="a capture (repeatable)")
    sw.add_argument("--seeds", type=int, help="tuning seeds per scenario")
    sw.add_argument("--held-back-seeds", type=int, help="seeds kept for the out-of-sample check")
    sw.add_argument("--duration", type=float, help="seconds per scenario run")
    sw.add_argument(
        "--store", help="a market-data store: one run per day, walk-forward (the last days held)"
    )
    sw.add_argument("--symbol", help="with --store: the symbol")
    sw.add_argument("--from", dest="from_day", type=_day, help="with --store: the first day")
    sw.add_argument("--to", dest="to_day", type=_day, help="with --store: the last day")
    sw.add_argument(
        "--held-back-days", type=int, help="with --store: the last days, scored not tuned [1]"
    )
    sw.add_argument(
        "--warmup", type=_nonnegative, help="with --store: seconds read before each day [600]"
    )
    sw.add_argument("--workers", type=int, help="local processes (default: every core)")
    sw.add_argument("--cluster", help="a Dask scheduler, e.g. tcp://10.0.0.5:8786")
    sw.add_argument("--out", type=Path, default=Path("sweep-out"), help="output directory")
    sw.add_argument("--json", action="store_true", help="print the result as JSON")
    sw.set_defaults(func=_cmd_sweep)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"market-maker: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MarketMakerError as exc:
        print(f"market-maker: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("market-maker: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # an output file or directory we could not write
        print(f"market-maker: error: {exc}", file=sys.stderr)
        return 1
    return code


# ----- limits ---------------------------------------------------------------------------------


def _load(path: Path | None) -> AppConfig:
    """The config file, or the built-in defaults; ``MM_`` environment overrides apply to both."""
    if path is None:
        return parse_config("", source="<defaults>", env=os.environ)
    return load_config(path)


def _cmd_limits(args: argparse.Namespace) -> int:
    config = _load(args.config)
    risk = config.risk
    sigma = risk.sigma_prior if args.sigma is None else args.sigma
    if args.confidence is not None:
        confidence = args.confidence
    elif args.sigma is None:
        confidence = 0.0
    elif args.samples is None:
        confidence = 1.0
    else:
        confidence = confidence_from_samples(args.samples, risk.confidence_samples)
    trade_rate = config.estimators.hawkes.mu if args.trade_rate is None else args.trade_rate
    horizon = horizon_s(trade_rate, risk.max_horizon_s)
    limits = position_limits(
        account_value=args.account_value,
        sigma=sigma,
        horizon_s=horizon,
        confidence=confidence,
        config=risk,
        sizing=config.sizing,
        balance=args.balance,
    )
    contracts = limits.max_position_value / args.mid
    cap = risk.max_position_cap
    if cap is not None and contracts > cap:
        contracts = cap
    report: dict[str, Any] = {
        "config": str(args.config) if args.config else "<defaults>",
        "account_value_usd": args.account_value,
        "sigma_estimate": sigma,
        "sigma_prior": risk.sigma_prior,
        "confidence": confidence,
        "sigma_used": limits.sigma_used,
        "trade_rate_per_s": trade_rate,
        "horizon_s": limits.horizon_s,
        "leverage_limit_usd": limits.leverage_usd,
        "volatility_limit_usd": limits.volatility_usd,
        "budget_limit_usd": limits.budget_usd,
        "max_position_value_usd": limits.max_position_value,
        "binding_limit": str(limits.binding),
        "mid": args.mid,
        "max_position_contracts": contracts,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(_format_limits(report, limits, config))
    return 0


def _usd(value: float) -> str:
    return f"{value:>16,.2f} USD"


def _format_limits(
    report: dict[str, Any], limits: PositionLimits, config: AppConfig, width: int | None = None
) -> str:
    """The limits table within ``width`` columns (the terminal's, at most 80): a line too long
    goes on below, indented, between words, so no number is ever cut in two."""
    risk = config.risk
    v = report["account_value_usd"]
    mark = {b: "" for b in BindingLimit}
    mark[limits.binding] = "  <- binds"
    budget = limits.budget_usd
    detail = "      "
    lines = [
        f"Position limits  (config: {report['config']})",
        f"  account value      {_usd(v)}",
        f"  sigma used         {limits.sigma_used:>16.6f} /sqrt s",
        f"{detail}estimate {report['sigma_estimate']:.6f}, prior {risk.sigma_prior:.6f}, "
        f"confidence {report['confidence']:.2f}",
        f"  horizon T          {limits.horizon_s:>16.3f} s",
        f"{detail}trade rate {report['trade_rate_per_s']:.4g}/s, max {risk.max_horizon_s:g} s",
        "",
        f"  leverage limit     {_usd(limits.leverage_usd)}{mark[BindingLimit.LEVERAGE]}",
        f"{detail}= {v:,.2f} x {risk.max_leverage:g}",
        f"  volatility limit   {_usd(limits.volatility_usd)}{mark[BindingLimit.VOLATILITY]}",
        f"{detail}= {v:,.2f} x {risk.risk_fraction:g} / ({risk.num_sigmas:g} x "
        f"{limits.sigma_used:.6f} x sqrt({limits.horizon_s:.3g}))",
        "  budget limit       "
        + ("            none" if budget is None else _usd(budget))
        + mark[BindingLimit.BUDGET],
        "",
        f"  max position value {_usd(limits.max_position_value)}",
        f"{detail}binding: {limits.binding}",
        f"  max position       {report['max_position_contracts']:>16.6f} contracts",
        f"{detail}at mid {report['mid']:,.2f}",
    ]
    if width is None:
        width = min(80, shutil.get_terminal_size((80, 24)).columns)
    out: list[str] = []
    for line in lines:
        if len(line) <= width:
            out.append(line)
            continue
        out.extend(
            textwrap.wrap(
                line,
                width=max(20, width),
                subsequent_indent=detail + "  " if line.startswith(detail) else detail,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return "\n".join(out)


# ----- run ------------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from market_maker.backtest.scenarios import engine_config, scenario, with_simulator
    from market_maker.backtest.session import replay_exchange
    from market_maker.engine import QuoteEngine
    from market_maker.log import configure_logging
    from market_maker.runtime import SimVenue, format_run_summary, run_live
    from market_maker.venues.exchange import ExchangeCore
    from market_maker.venues.replay import ReplayMarket
    from market_maker.venues.sim import simulated_exchange

    if args.venue == "replay" and args.data is None:
        raise MarketMakerError("--venue replay needs --data FILE")
    if args.data is not None and args.venue != "replay":
        raise MarketMakerError("--data only applies to --venue replay")
    live_flags = [
        f
        for f in ("paper", "live", "ws_url", "testnet", "address", "reset_halt")
        if getattr(args, f)
    ]
    if live_flags and args.venue != "hyperliquid":
        flag = "--" + live_flags[0].replace("_", "-")
        raise MarketMakerError(f"{flag} only applies to --venue hyperliquid")
    config = _with_instrument(with_strategy(_load(args.config), args.strategy), args)
    tty = sys.stdout.isatty()
    # On a terminal the status board owns stdout and only errors are logged (to stderr);
    # otherwise every event is a JSON line on stdout.
    configure_logging(
        level="error" if tty else "info", json=not tty, stream=sys.stdout if not tty else None
    )
    if args.venue == "hyperliquid":
        summary = asyncio.run(_run_hyperliquid(config, args, tty))
        if tty:
            print()
            print(format_run_summary(summary))
        return EXIT_INTERRUPTED if summary.reason == "interrupted" else 0
    exchange: ExchangeCore
    if args.venue == "replay":
        from market_maker.fees import apply_fees

        market = ReplayMarket(args.data, overrides=config.instrument)
        exchange = replay_exchange(
            market,
            args.seed,
            request_expiry_s=config.orders.request_expiry_s,
            instrument=apply_fees(market.instrument, config.fees)[0],
            funding_rate=config.funding.rate,
            funding_interval_s=config.funding.interval_s,
        )
    else:
        base = scenario(args.scenario)
        if args.asset.upper() != "BTC" and config.simulator.mid0 is None:
            raise MarketMakerError(
                f"--asset {args.asset}: the simulator's scenarios are a BTC-like market (mid "
                f"{base.mid0:,.0f}); give it {args.asset}'s scale with [simulator] mid0, "
                "tick_size and lot_size (calibrate -o writes them from a capture)"
            )
        params = msgspec.structs.replace(
            base, symbol=f"SIM-{args.asset.upper()}", duration_s=864_000.0
        )
        params = with_simulator(params, config.simulator)
        config = engine_config(params, config)
        exchange = simulated_exchange(
            params, args.seed, request_expiry_s=config.orders.request_expiry_s
        )
    engine = QuoteEngine(config, exchange.instrument)
    venue = SimVenue(exchange, speed=args.speed, name=args.venue)
    summary = asyncio.run(
        run_live(venue, engine, duration_s=args.duration, tty=tty, metrics_port=args.metrics_port)
    )
    if tty:
        print()
        print(format_run_summary(summary))
    return EXIT_INTERRUPTED if summary.reason == "interrupted" else 0


def _venue_fields(url: str, asset: str, info: Any) -> dict[str, Any]:
    """What discovery found, for the log line that starts a Hyperliquid session."""
    inst = info.instrument
    return {
        "url": url,
        "asset": asset,
        "asset_index": info.asset_index,
        "tick": inst.tick_size,
        "lot": inst.lot_size,
        "min_notional": inst.min_notional,
        "mid": info.mid,
        **({"dex": info.dex, "isolated": info.isolated, "oracle": info.oracle} if info.dex else {}),
    }


async def _run_hyperliquid(config: AppConfig, args: argparse.Namespace, tty: bool) -> Any:
    from market_maker.engine import QuoteEngine
    from market_maker.log import get_logger
    from market_maker.runtime import run_live
    from market_maker.venues.exchange import FeeModel
    from market_maker.venues.hyperliquid.feed import HyperliquidFeed
    from market_maker.venues.paper import PaperVenue

    address = args.address or config.venue.address
    if _wants_live(config, args):
        key = _private_key(config)
        if key is None:
            raise MarketMakerError(
                "live trading needs the API wallet's key: set HYPERLIQUID_PRIVATE_KEY or "
                "[venue] private_key_file"
            )
        return await _trade_hyperliquid(config, args, tty, key, address)
    if args.reset_halt:
        raise MarketMakerError("--reset-halt applies to live trading (paper runs keep no state)")
    if address is not None:
        _check_address(address)
    client = _client_config(config, args)
    log = get_logger("hyperliquid")
    _connecting(client.url)
    if not args.paper and (
        os.environ.get("HYPERLIQUID_PRIVATE_KEY") or config.venue.private_key_file
    ):
        print(
            "market-maker: paper trading: a key is set, but only --live sends orders",
            file=sys.stderr,
        )
    feed = HyperliquidFeed(args.asset, client)
    try:
        info = await feed.discover(config.instrument, address, config.fees)
    except BaseException:
        await feed.close()
        raise
    equity = config.venue.paper_equity_usd
    if info.account_value is not None and info.account_value > 0.0:
        equity = info.account_value
    inst = info.instrument
    log.info(
        "paper_trading",
        **_venue_fields(client.url, args.asset, info),
        equity_usd=equity,
        watched=address,
        watched_position=info.position,
        maker_fee_bps=inst.maker_fee_bps,
        taker_fee_bps=inst.taker_fee_bps,
        fee_source=info.fee_source,
    )
    venue = PaperVenue(
        feed,
        inst,
        seed=args.seed,
        initial_equity=equity,
        fees=FeeModel(
            maker_bps=inst.maker_fee_bps if inst.maker_fee_bps is not None else 1.5,
            taker_bps=inst.taker_fee_bps if inst.taker_fee_bps is not None else 4.5,
        ),
        request_expiry_s=config.orders.request_expiry_s,
    )
    engine = QuoteEngine(config, inst)
    return await run_live(
        venue, engine, duration_s=args.duration, tty=tty, metrics_port=args.metrics_port
    )


def _connecting(url: str) -> None:
    """Say where we connect at once: an unreachable venue takes 15 s to give up."""
    print(f"connecting to {url} (gives up after 15 s) ...", file=sys.stderr, flush=True)


def _wants_live(config: AppConfig, args: argparse.Namespace) -> bool:
    """Whether this run trades with real orders: ``--live``, or ``[venue] live = true`` on
    testnet. Mainnet needs ``--live`` itself; ``--paper`` always wins."""
    if args.paper:
        return False
    if args.live:
        return True
    if not config.venue.live:
        return False
    if not (args.testnet or config.venue.testnet):
        raise MarketMakerError(
            "[venue] live = true on mainnet: refusing to trade real money without --live "
            "on the command line (or pass --paper)"
        )
    return True


def _network(config: AppConfig, args: argparse.Namespace) -> str:
    return "testnet" if args.testnet or config.venue.testnet else "mainnet"


def _start_limits(config: AppConfig, equity: float, mid: float) -> tuple[PositionLimits, float]:
    """The limits a run starts from (volatility at its prior, trade rate at the Hawkes
    baseline) and the position they allow at ``mid``, in contracts."""
    risk = config.risk
    limits = position_limits(
        account_value=equity,
        sigma=risk.sigma_prior,
        horizon_s=horizon_s(config.estimators.hawkes.mu, risk.max_horizon_s),
        confidence=0.0,
        config=risk,
        sizing=config.sizing,
        balance=None,
    )
    contracts = limits.max_position_value / mid if mid > 0.0 else risk.max_position
    if risk.max_position_cap is not None:
        contracts = min(contracts, risk.max_position_cap)
    return limits, contracts


def _private_key(config: AppConfig) -> str | None:
    """The API wallet's key: ``HYPERLIQUID_PRIVATE_KEY``, else ``[venue] private_key_file``."""
    key = os.environ.get("HYPERLIQUID_PRIVATE_KEY")
    if key:
        return key
    path = config.venue.private_key_file
    if path is None:
        return None
    try:
        return Path(path).expanduser().read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"venue.private_key_file: cannot read {path}: {type(exc).__name__}"
        ) from None


async def _trade_hyperliquid(
    config: AppConfig, args: argparse.Namespace, tty: bool, key: str, address: str | None
) -> Any:
    """Live trading: signed orders on the venue."""
    from market_maker.engine import QuoteEngine
    from market_maker.log import get_logger
    from market_maker.runtime import run_live
    from market_maker.state import describe_halt
    from market_maker.venues.hyperliquid.signing import Signer
    from market_maker.venues.hyperliquid.venue import HyperliquidVenue

    address = address or os.environ.get("HYPERLIQUID_ACCOUNT_ADDRESS") or None
    if address is not None:
        _check_address(address)
    client = _client_config(config, args)
    testnet = args.testnet or config.venue.testnet
    signer = Signer(key, mainnet=not testnet)
    v = config.venue
    venue = HyperliquidVenue(
        args.asset,
        client,
        signer,
        account=address,
        dms_ahead_s=v.dms_ahead_s,
        dms_refresh_s=v.dms_refresh_s,
        account_interval_s=v.account_interval_s,
        request_expiry_s=config.orders.request_expiry_s,
    )
    network = _network(config, args)
    state = _state_file(config, network, venue.user, args.asset)
    _connecting(client.url)
    if args.reset_halt:
        _print_reset(state, network, args.asset, sys.stderr)
    else:
        saved = state.load()  # a file that cannot be trusted stops us before we connect
        for halt in () if saved is None else saved.kill_switch.halts:
            print(
                f"HALTED by an earlier run: {describe_halt(halt)}. Nothing will be quoted; "
                f"clear it with: market-maker reset --asset {args.asset}"
                + (" --testnet" if network == "testnet" else "")
                + f" --address {venue.user} (or run --reset-halt)",
                file=sys.stderr,
                flush=True,
            )
    try:
        info = await venue.discover(config.instrument, config.fees)
    except BaseException:
        await venue.feed.close()
        raise
    inst = info.instrument
    equity = info.account_value or 0.0
    limits, contracts = _start_limits(config, equity, info.mid)
    ks = config.kill_switch
    get_logger("hyperliquid").info(
        "live_trading",
        **_venue_fields(client.url, args.asset, info),
        network=network,
        account=venue.user,
        agent=signer.address,
        account_value=info.account_value,
        position=info.position,
        max_position=contracts,
        max_position_value_usd=limits.max_position_value,
        binding_limit=str(limits.binding),
        max_daily_loss_usd=ks.max_daily_loss_usd,
    )
    print(
        f"LIVE {network} {venue.user} {args.asset}: equity {equity:,.2f} USD, "
        f"max position {contracts:.6g} ({contracts * info.mid:,.0f} USD, {limits.binding}), "
        f"daily loss {ks.max_daily_loss_usd:,.0f} USD, drawdown {ks.max_drawdown_pct:g} %",
        file=sys.stderr,
        flush=True,
    )
    engine = QuoteEngine(config, inst)
    summary = await run_live(
        venue,
        engine,
        duration_s=args.duration,
        tty=tty,
        metrics_port=args.metrics_port,
        state_file=state,
    )
    # The flat check: what the venue says after the final sweep against what we believe.
    held, left = venue.final_position, venue.final_open_orders
    ok = held is not None and abs(held - summary.position) < inst.lot_size / 2 and left == 0
    log = get_logger("hyperliquid")
    (log.info if ok else log.error)(
        "final_check",
        ok=ok,
        venue_position=held,
        engine_position=summary.position,
        venue_open_orders=left,
    )
    if not ok:
        raise MarketMakerError(
            f"final check failed: the venue holds {held} with {left} open orders, "
            f"the engine believes {summary.position}"
        )
    return summary


def _state_file(config: AppConfig, network: str, account: str, asset: str) -> Any:
    from market_maker.state import StateFile, default_state_dir

    where = config.venue.state_dir
    directory = default_state_dir() if where is None else Path(where)
    return StateFile(directory, network=network, account=account, asset=asset)


def _print_reset(state: Any, network: str, asset: str, out: Any = None) -> None:
    """Clear the state file's halts, saying what they were."""
    from market_maker.state import describe_halt

    out = out or sys.stdout
    halts = state.reset()
    who = f"{asset.upper()} on {network}, account {state.account}"
    if not halts:
        print(f"{who}: not halted; nothing to reset ({state.path})", file=out)
        return
    print(f"{who}: cleared the halt an earlier run latched:", file=out)
    for halt in halts:
        print(f"  {describe_halt(halt)}", file=out)
    print(
        f"  the next start takes the account's equity as the day's opening ({state.path})",
        file=out,
    )


def _cmd_reset(args: argparse.Namespace) -> int:
    config = _load(args.config)
    network = "testnet" if args.testnet or config.venue.testnet else "mainnet"
    account = args.address or config.venue.address or os.environ.get("HYPERLIQUID_ACCOUNT_ADDRESS")
    if not account:
        key = _private_key(config)
        if key is None:
            raise MarketMakerError("reset: name the account with --address 0x...")
        from market_maker.venues.hyperliquid.signing import Signer

        account = Signer(key, mainnet=network == "mainnet").address
    _check_address(account)
    _print_reset(_state_file(config, network, account, args.asset), network, args.asset)
    return 0


def _check_address(address: str, flag: str = "--address") -> None:
    body = address[2:]
    if not (
        address.startswith("0x")
        and len(body) == 40
        and all(c in "0123456789abcdefABCDEF" for c in body)
    ):
        raise MarketMakerError(f"{flag} must be 0x and 40 hex digits (got {address!r})")


def _cmd_record(args: argparse.Namespace) -> int:
    import asyncio

    from market_maker.log import configure_logging
    from market_maker.venues.hyperliquid.recorder import record

    config = _load(args.config)
    out: Path = args.out
    if out.exists() and not args.force:
        raise MarketMakerError(f"{out} exists (pass --force to overwrite)")
    if out.is_dir() or not out.parent.is_dir():
        raise MarketMakerError(f"{out}: not a file in an existing directory")
    client = _client_config(config, args)
    tty = sys.stderr.isatty()
    # On a terminal only warnings are logged (the periodic counts would wrap at 80 columns);
    # otherwise every event is a JSON line.
    configure_logging(level="warning" if tty else "info", json=not tty, stream=sys.stderr)
    print(f"connecting to {client.url} ... (Ctrl-C stops)", file=sys.stderr, flush=True)
    summary = asyncio.run(record(args.asset, client, out, duration_s=args.duration))
    if summary.connects == 0:
        out.unlink(missing_ok=True)  # a capture of nothing is not a capture
        raise MarketMakerError(
            f"never connected to {client.url} in {summary.wall_s:.0f} s: nothing recorded"
        )
    print(
        f"recorded {summary.lines:,} lines ({summary.bytes:,} bytes) of {args.asset} "
        f"to {summary.path}\n  in {summary.wall_s:.1f} s; connects {summary.connects}, "
        f"disconnects {summary.disconnects}; stopped: {summary.reason}"
    )
    return 0


def _cmd_fake_exchange(args: argparse.Namespace) -> int:
    import asyncio

    from market_maker.venues.hyperliquid.fake_exchange import FakeHyperliquidExchange, serve

    for flag in ("agent", "user"):
        if getattr(args, flag) is not None:
            _check_address(getattr(args, flag), f"--{flag}")
    if not 0 <= args.sz_decimals <= 8:
        raise MarketMakerError("--sz-decimals: must be between 0 and 8")
    fake = FakeHyperliquidExchange(
        agent=args.agent,
        user=args.user,
        mainnet=not args.testnet,
        traded_volume_usd=args.traded_volume,
        reorder_ms=args.reorder_ms,
        duplicate_fills=args.duplicate_fills,
        address_budget=args.address_budget,
        block_ms=args.block_ms,
        server_skew_ms=args.server_skew_ms,
        no_margin=args.no_margin,
        coin=args.asset.upper(),
        mid=args.mid,
        tick=args.tick,
        sz_decimals=args.sz_decimals,
        trade_rate_per_s=args.trade_rate,
        sweep_ticks=args.sweep_ticks,
        buy_share=args.buy_share,
        account_value=args.account_value,
        seed=args.seed,
        port=args.port,
    )
    fake.slow_s = args.slow_ms / 1000.0

    def ready(url: str) -> None:
        signer = args.agent or "any key"
        print(
            f"fake Hyperliquid exchange on {url.removeprefix('ws://').removesuffix('/ws')}: "
            f"{fake.coin} at {args.mid:,.2f}",
            f"  account {args.account_value:,.2f} USD, signatures from {signer}",
            f"  use: --ws-url {url}",
            "  (Ctrl-C stops it)" if args.duration is None else f"  (for {args.duration:g} s)",
            sep="\n",
            flush=True,
        )

    try:
        asyncio.run(
            serve(fake, duration_s=args.duration, drop_every_s=args.drop_every, ready=ready)
        )
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise MarketMakerError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
    print(f"fake exchange stopped: {fake.stats.connections} connections", flush=True)
    return 0


# ----- backtest -------------------------------------------------------------------------------


def _cmd_backtest(args: argparse.Namespace) -> int:
    from market_maker.backtest import format_compare, format_summary, write_compare, write_report
    from market_maker.backtest.session import run_session

    # Every option checked before anything runs: a conflict is an error, never silence.
    if args.strategy and args.compare is not None:
        raise MarketMakerError(
            "--strategy and --compare conflict: list every strategy in --compare"
        )
    if args.compare is not None and not [k for k in args.compare.split(",") if k.strip()]:
        raise MarketMakerError("--compare: no strategy given (e.g. --compare glft,ladder)")
    report: Path | None = args.report
    if report is not None and report.exists() and not report.is_dir():
        raise MarketMakerError(f"--report {report}: exists and is not a directory")
    config = _with_instrument(_load(args.config), args)
    store = _store_range(args)
    segmented = _segment_options(args, store)
    if segmented is not None:
        return _segmented_backtest(args, config, store, *segmented)
    kinds = (
        [k.strip() for k in args.compare.split(",") if k.strip()]
        if args.compare
        else [args.strategy or config.strategy.kind]
    )
    unknown = [k for k in kinds if k not in STRATEGY_KINDS]
    if unknown:
        raise MarketMakerError(
            f"--compare: unknown strategy {unknown[0]!r}; one of {STRATEGY_KINDS}"
        )
    if args.scenario == "as2008":
        if report is not None:
            raise MarketMakerError("--report does not apply to --scenario as2008 (a table)")
        chosen = kinds if args.compare or args.strategy else None
        wrong = [k for k in chosen or [] if k not in _AS2008_KINDS]
        if wrong:
            raise MarketMakerError(
                f"--scenario as2008 runs {', '.join(_AS2008_KINDS)}; not {wrong[0]!r}"
            )
        return _as2008(args, chosen)
    results = []
    recs = []
    for kind in kinds:
        progress = _progress_bar(kind) if sys.stderr.isatty() and not args.json else None
        try:
            result, rec = run_session(
                config,
                strategy=kind,
                scenario=args.scenario,
                data=args.data,
                store=store,
                seed=args.seed,
                duration_s=args.duration,
                record=args.report is not None,
                progress=progress,
                feed_latency_ms=args.feed_latency_ms,
            )
        finally:
            if progress is not None:
                progress.close()
        results.append(result)
        if result.interrupted:
            break
        if args.report is not None and rec is not None:
            recs.append(rec)
            target = args.report / kind if len(kinds) > 1 else args.report
            for path in write_report(target, result, rec):
                print(f"wrote {path}", file=sys.stderr)
    if args.report is not None and len(kinds) > 1 and len(recs) == len(results) > 1:
        for path in write_compare(args.report, results, recs):
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        encoded = [msgspec.to_builtins(r) for r in results]
        print(json.dumps(encoded[0] if len(encoded) == 1 else encoded))
    elif len(kinds) > 1:
        print(format_compare(results))
    else:
        print(format_summary(results[0]))
    return EXIT_INTERRUPTED if results[-1].interrupted else 0


_AS2008_KINDS = ("avellaneda_stoikov", "symmetric", "glft")


def _store_range(args: argparse.Namespace) -> Any:
    """``backtest --store``'s range (a ``StoreRange``), or None without ``--store``."""
    given = [
        f
        for f, v in (
            ("--symbol", args.symbol),
            ("--from", args.from_day),
            ("--to", args.to_day),
            ("--store-venue", args.store_venue),
        )
        if v
    ]
    if args.store is None:
        if given:
            raise MarketMakerError(f"{given[0]} only applies with --store")
        return None
    if not args.symbol:
        raise MarketMakerError("--store needs --symbol (market-maker store ls DIR lists them)")
    if args.from_day and args.to_day and args.to_day < args.from_day:
        raise MarketMakerError(f"--to {args.to_day} is before --from {args.from_day}")
    from market_maker.backtest.session import StoreRange

    return StoreRange(
        store=args.store,
        symbol=args.symbol,
        start=args.from_day,
        end=args.to_day,
        venue=args.store_venue,
    )


def _segment_options(args: argparse.Namespace, store: Any) -> tuple[float, float] | None:
    """``(segment length s, warm-up s)`` when ``backtest --store`` runs in segments."""
    given = [
        f
        for f, v in (
            ("--segments", args.segments),
            ("--warmup", args.warmup),
            ("--workers", args.workers),
            ("--cluster", args.cluster),
        )
        if v is not None
    ]
    if not given:
        return None
    if store is None:
        raise MarketMakerError(f"{given[0]} only applies with --store")
    if args.workers is not None and args.cluster:
        raise MarketMakerError("--workers and --cluster conflict: workers are the cluster's")
    if args.workers is not None and not 1 <= args.workers <= 1024:
        raise MarketMakerError(f"--workers {args.workers}: must be 1..1024")
    if args.compare is not None:
        raise MarketMakerError("--segments runs one strategy: --compare does not apply")
    if args.duration is not None:
        raise MarketMakerError("--segments runs whole segments: --duration does not apply")
    from market_maker.backtest.segments import DAY_S, parse_length

    length = DAY_S if args.segments is None else parse_length(args.segments)
    return float(length), 600.0 if args.warmup is None else args.warmup


def _segmented_backtest(
    args: argparse.Namespace, config: AppConfig, store: Any, length_s: float, warmup_s: float
) -> int:
    from market_maker.backtest import format_summary
    from market_maker.backtest.parallel import dask_mapper, local_mapper
    from market_maker.backtest.segments import (
        format_segments,
        run_segmented,
        segment_rows,
        write_segment_report,
    )

    if args.cluster:
        mapper = dask_mapper(args.cluster)
        where = f"cluster {args.cluster}"
    else:
        workers = args.workers or os.cpu_count() or 1
        mapper = local_mapper(workers)
        where = f"{workers} process" + ("" if workers == 1 else "es")
    print(f"backtest: {store.label()} in segments on {where}", file=sys.stderr)
    bar = _CountBar("segments") if sys.stderr.isatty() and not args.json else None
    try:
        run = run_segmented(
            config,
            store,
            mapper,
            length_s=length_s,
            warmup_s=warmup_s,
            strategy=args.strategy,
            seed=args.seed,
            feed_latency_ms=args.feed_latency_ms,
            progress=bar,
        )
    finally:
        if bar is not None:
            bar.close()
    if args.report is not None:
        for path in write_segment_report(args.report, run):
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        data = msgspec.to_builtins(run.summary)
        data["segments"] = segment_rows(run)
        print(json.dumps(data))
    else:
        print(format_summary(run.summary))
        print(format_segments(run))
    return 0


def _as2008(args: argparse.Namespace, kinds: list[str] | None) -> int:
    from market_maker.backtest.as2008 import format_table, run_as2008

    names = kinds or ["avellaneda_stoikov", "symmetric", "glft"]
    rows = []
    interrupted = False
    for kind in names:
        bar = _progress_bar(kind) if sys.stderr.isatty() and not args.json else None
        try:
            rows.append(run_as2008(kind, paths=args.paths, seed=args.seed, progress=bar))
            if bar is not None:
                bar(1.0)
        except KeyboardInterrupt:
            interrupted = True  # Ctrl-C: the strategies finished so far still print
            break
        finally:
            if bar is not None:
                bar.close()
    if args.json:
        print(json.dumps([msgspec.to_builtins(r) for r in rows]))
    elif rows:
        print(format_table(rows))
    if interrupted:
        done = ", ".join(r.strategy for r in rows) or "none"
        print(f"(interrupted: partial; finished: {done})", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


class _ProgressBar:
    """A ``rich`` progress bar on stderr, fed fractions 0..1; ``close()`` leaves it drawn."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn

        self._progress = Progress(
            "  {task.description}",
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=Console(file=sys.stderr),
            transient=False,
        )
        self._task = self._progress.add_task(label, total=1.0)
        self._progress.start()

    def __call__(self, done: float) -> None:
        self._progress.update(self._task, completed=done)

    def close(self) -> None:
        self._progress.stop()


def _progress_bar(label: str) -> _ProgressBar:
    return _ProgressBar(label)


# ----- config files ---------------------------------------------------------------------------


# ----- the market-data store -----------------------------------------------------------------


def _day(text: str) -> Any:
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day YYYY-MM-DD: {text!r}") from None


def _cmd_import(args: argparse.Namespace) -> int:
    from market_maker.store import import_capture
    from market_maker.store.hl_archive import import_hl_archive, is_hl_archive
    from market_maker.store.tardis import import_tardis, is_tardis_csv, tardis_group

    config = _with_instrument(_load(args.config), args)
    for source in args.sources:
        if not source.is_file():
            raise MarketMakerError(f"{source}: no such file")
    # Tardis files of one exchange, symbol and day (book, trades) make one source together.
    tardis: dict[tuple[str, str, str], list[Path]] = {}
    jobs: list[tuple[str, Any]] = []
    for source in args.sources:
        if is_hl_archive(source):
            jobs.append((source.name, functools.partial(import_hl_archive, source)))
        elif is_tardis_csv(source):
            tardis.setdefault(tardis_group(source), []).append(source)
        else:
            jobs.append((source.name, functools.partial(import_capture, source)))
    for files in tardis.values():
        jobs.append(("+".join(p.name for p in files), functools.partial(import_tardis, files)))
    for name, job in jobs:
        for part in job(args.store, overrides=config.instrument):
            print(
                f"{name}: {part.venue} {part.symbol} {part.day}: "
                f"{part.events:,} events, {part.rows:,} rows"
            )
    return 0


def _cmd_store_ls(args: argparse.Namespace) -> int:
    from market_maker.store import store_summary

    rows = store_summary(args.store)
    if args.json:
        print(json.dumps([msgspec.to_builtins(r) for r in rows]))
        return 0
    if not rows:
        print(f"{args.store}: empty")
        return 0
    head = ("venue", "symbol", "day", "files", "events", "rows", "bytes")
    table = [head] + [
        (r.venue, r.symbol, r.day, str(r.files), f"{r.events:,}", f"{r.rows:,}", f"{r.bytes:,}")
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        cells = [
            c.ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
    total = sum(r.bytes for r in rows)
    print(f"{len({(r.venue, r.symbol) for r in rows})} symbols, {len(rows)} days, {total:,} bytes")
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    if config == AppConfig() and not _has_settings(args.file):
        print(f"{args.file}: no settings, using defaults")
        return 0
    print(f"{args.file}: ok")
    risk = config.risk
    print(
        f"  risk: risk_fraction={risk.risk_fraction:g} num_sigmas={risk.num_sigmas:g} "
        f"sigma_prior={risk.sigma_prior:g} max_leverage={risk.max_leverage:g} "
        f"max_horizon_s={risk.max_horizon_s:g}"
    )
    return 0


def _has_settings(path: Path) -> bool:
    """Whether the (already validated) TOML file sets anything at all."""
    import tomllib

    try:
        return bool(tomllib.loads(path.read_text("utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from market_maker.backtest.calibrate import calibrate, format_calibration, overlay_toml

    config = _with_instrument(_load(args.config), args)
    out: Path | None = args.output
    if out is not None and out.exists() and not args.force:
        raise MarketMakerError(f"{out} exists; pass --force to overwrite it")
    try:
        result = calibrate(args.data, config)
    except ValueError as exc:
        raise MarketMakerError(str(exc)) from None
    if args.json:
        data = msgspec.to_builtins(result)
        data["unidentified"] = result.unidentified()
        print(msgspec.json.encode(data).decode())
    else:
        print(format_calibration(result))
    if out is not None:
        try:
            out.write_text(overlay_toml(result, force=args.force), encoding="utf-8")
        except OSError as exc:
            raise MarketMakerError(f"{out}: cannot write: {exc.strerror or exc}") from None
        if not args.json:
            print(f"wrote {out}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from market_maker.backtest import sweep

    if args.workers is not None and args.cluster:
        raise MarketMakerError("--workers and --cluster conflict: workers are the cluster's")
    if args.workers is not None and not 1 <= args.workers <= 1024:
        raise MarketMakerError(f"--workers {args.workers}: must be 1..1024")
    if args.out.exists() and not args.out.is_dir():
        raise MarketMakerError(f"--out {args.out}: exists and is not a directory")
    settings, _, _, _ = sweep.load_grid(args.grid)
    changes: dict[str, Any] = {}
    if args.scenarios is not None:
        changes["scenarios"] = [k.strip() for k in args.scenarios.split(",") if k.strip()]
    if args.data:
        changes["data"] = [str(p.resolve()) for p in args.data]
        if args.scenarios is None:
            changes["scenarios"] = []  # captures only, unless scenarios are named too
    for name in ("seeds", "held_back_seeds"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.duration is not None:
        changes["duration_s"] = args.duration
    for flag, name, value in (
        ("--store", "store", args.store),
        ("--symbol", "symbol", args.symbol),
        ("--from", "start", args.from_day),
        ("--to", "end", args.to_day),
        ("--held-back-days", "held_back_days", args.held_back_days),
        ("--warmup", "warmup_s", args.warmup),
    ):
        if value is not None:
            if name != "store" and not (args.store or settings.store):
                raise MarketMakerError(f"{flag} only applies with --store")
            if name == "store" and "://" not in value:
                value = str(Path(value).resolve())  # from the working directory
            changes[name] = value
    if args.store is not None and args.scenarios is None and not args.data:
        changes["scenarios"] = []  # the store only, unless scenarios are named too
    plan = sweep.build_plan(args.grid, settings=msgspec.structs.replace(settings, **changes))
    if args.cluster:
        executor = sweep.dask_executor(args.cluster)
        where = f"cluster {args.cluster}"
    else:
        workers = args.workers or os.cpu_count() or 1
        executor = sweep.process_executor(workers)
        where = f"{workers} process" + ("" if workers == 1 else "es")
    print(
        f"sweep: {len(plan.points)} points x {sweep.runs_per_point(plan)} runs on {where}, "
        f"into {args.out}",
        file=sys.stderr,
    )
    bar = _CountBar("sweep") if sys.stderr.isatty() and not args.json else None
    try:
        result = sweep.run_sweep(plan, args.out, executor, progress=bar)
    except KeyboardInterrupt:
        runs = args.out / "runs.jsonl"
        saved = len(runs.read_bytes().splitlines()) if runs.exists() else 0
        print(
            f"sweep interrupted: {saved} finished runs are saved in {runs}; the same command "
            "resumes from them",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        if bar is not None:
            bar.close()
    paths = sweep.write_outputs(result, args.out)
    if args.json:
        print(msgspec.json.encode(result).decode())
    else:
        print(sweep.format_sweep(result))
        for path in paths:
            print(f"wrote {path}")
        if sweep.best_point(result) is None:
            print("no feasible point: best.toml not written (see points.csv, why_not)")
    best = sweep.best_point(result)
    held = [h.score for h in result.test.values() if h.runs]
    if best is not None and held and max(held) < 0.0:
        score = result.test[best].score if best in result.test else max(held)
        print(
            f"warning: every held-back score is negative (best.toml's point {best}: "
            f"{score:.4g}):\n  best.toml is the setting that lost least, not one that makes "
            "money",
            file=sys.stderr,
        )
    return 0


class _CountBar(_ProgressBar):
    """A progress bar fed (done, total) counts."""

    def __call__(self, done: float, total: float = 1.0) -> None:
        self._progress.update(self._task, completed=done / total if total else 1.0)


def _cmd_init_config(args: argparse.Namespace) -> int:
    text = default_config_text()
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    if out.exists() and not args.force:
        raise MarketMakerError(f"{out} exists; pass --force to overwrite it")
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0
