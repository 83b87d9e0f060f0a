"""Backtests: scenarios, the runner and reports."""

from market_maker.backtest.report import format_compare, format_summary, write_compare, write_report
from market_maker.backtest.runner import BacktestResult, Recording, run_backtest
from market_maker.backtest.scenarios import SCENARIOS, engine_config, scenario

__all__ = [
    "SCENARIOS",
    "BacktestResult",
    "Recording",
    "engine_config",
    "format_compare",
    "format_summary",
    "run_backtest",
    "scenario",
    "write_compare",
    "write_report",
]
