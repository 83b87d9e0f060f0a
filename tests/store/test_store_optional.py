"""The store's dependencies stay optional: nothing imports pyarrow or fsspec until a store is
used, so the default install (without the ``store`` extra) runs every other command."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_when_cli_and_store_modules_loaded_then_pyarrow_and_fsspec_are_not():
    code = (
        "import sys, market_maker.cli, market_maker.store, market_maker.backtest.session\n"
        "from market_maker.cli import build_parser\n"
        "build_parser().parse_args(['store', 'ls', 'x'])\n"
        "print(sorted(m for m in ('pyarrow', 'fsspec') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    assert out.strip() == "[]"


def test_store_when_pyarrow_missing_then_one_line_naming_the_extra(monkeypatch, tmp_path, capsys):
    import importlib.util

    from market_maker.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a)
    )
    assert main(["store", "ls", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "needs pyarrow" in err and "market-maker[store]" in err
