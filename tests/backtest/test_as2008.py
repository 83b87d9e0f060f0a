import json

import pytest

from market_maker.backtest.as2008 import PAPER_TABLE, run_as2008
from market_maker.cli import main


@pytest.fixture(scope="module")
def rows():
    return {k: run_as2008(k, paths=400, seed=3) for k in ("inventory", "symmetric", "glft")}


def test_inventory_strategy_cuts_profit_and_inventory_dispersion(rows):
    inv, sym = rows["inventory"], rows["symmetric"]
    assert inv.std_profit < 0.65 * sym.std_profit
    assert inv.std_final_q < 0.5 * sym.std_final_q
    assert inv.profit == pytest.approx(sym.profit, rel=0.15)


def test_figures_are_close_to_the_paper(rows):
    for name in ("inventory", "symmetric"):
        ours, paper = rows[name], PAPER_TABLE[name]
        assert ours.profit == pytest.approx(paper["profit"], rel=0.1)
        assert ours.std_profit == pytest.approx(paper["std_profit"], rel=0.25)
        assert ours.std_final_q == pytest.approx(paper["std_final_q"], rel=0.2)
        assert abs(ours.final_q) < 1.0


def test_glft_also_controls_inventory(rows):
    assert rows["glft"].std_final_q < 0.5 * rows["symmetric"].std_final_q


def test_cli_compare(capsys):
    assert (
        main(
            [
                "backtest",
                "--scenario",
                "as2008",
                "--paths",
                "50",
                "--compare",
                "avellaneda_stoikov,symmetric",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert [r["strategy"] for r in out] == ["inventory", "symmetric"]
    assert main(["backtest", "--scenario", "as2008", "--paths", "20"]) == 0
    assert "paper" in capsys.readouterr().out
