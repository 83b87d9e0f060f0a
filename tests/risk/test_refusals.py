"""The venue's refusal texts: classified, counted by distinct text, logged one line per text."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from market_maker.risk.refusals import RefusalClass, RefusalTally, classify, refusal_key
from market_maker.runtime import RefusalLog, refusal_line


@pytest.mark.parametrize(
    ("text", "cls"),
    [
        ("User or API Wallet 0x0123 does not exist.", RefusalClass.UNKNOWN_ACCOUNT),
        ("Must deposit before performing actions. User: 0x123", RefusalClass.UNKNOWN_ACCOUNT),
        ("Insufficient margin to place order. asset=1", RefusalClass.MARGIN),
        (
            "Order would cause position to exceed margin tier limit at current leverage",
            RefusalClass.MARGIN,
        ),
        ("Too many cumulative requests sent (10004 > 10002) for ...", RefusalClass.BUDGET),
        ("address request budget spent", RefusalClass.BUDGET),
        ("rate limited", RefusalClass.BUDGET),
        (
            "Post only order would have immediately matched, bbo was 1@2. asset=1",
            RefusalClass.POST_ONLY,
        ),
        ("Action already expired", RefusalClass.STALE),
        ("Invalid nonce: duplicate nonce 17", RefusalClass.STALE),
        ("Order must have minimum value of $10. asset=1", RefusalClass.INVALID),
        ("Price must be divisible by tick size.", RefusalClass.INVALID),
        ("something new", RefusalClass.OTHER),
    ],
)
def test_classify_reads_the_documented_texts(text, cls):
    assert classify(text) is cls


def test_texts_that_differ_only_in_numbers_count_as_one():
    assert refusal_key("bbo was 99999@100001. asset=1") == "bbo was #@#. asset=#"
    tally = RefusalTally()
    for bid in (100, 101, 102):
        tally.add(f"Post only order would have immediately matched, bbo was {bid}@{bid + 2}.")
    tally.add("Insufficient margin to place order.")
    (first, second) = tally.counts()
    assert (first.count, first.refusal_class) == (3, "post_only")
    assert first.text.endswith("bbo was 102@104.")  # the latest wording
    assert (second.count, second.refusal_class) == (1, "margin")
    assert tally.total == 4 and tally.by_class[RefusalClass.POST_ONLY] == 3
    assert refusal_line(tally.counts(), tally.last) == (
        "4: Insufficient margin to place order. (1x, margin)"
    )


def test_the_log_has_one_line_per_text_with_its_count():
    tally = RefusalTally()
    refusal_log = RefusalLog(every_s=10.0)
    with capture_logs() as logs:
        for i in range(50):
            tally.add("Insufficient margin to place order.")
            refusal_log.update(tally, now_s=i * 0.1)  # 5 s of refusals: one line so far
        assert [e["count"] for e in logs] == [1]
        tally.add("Insufficient margin to place order.")
        refusal_log.update(tally, now_s=12.0)  # 10 s on: one more line, with the count
        refusal_log.update(tally, now_s=13.0, final=True)  # nothing new since: no line
    assert [(e["event"], e["count"]) for e in logs] == [("venue_refused", 1), ("venue_refused", 51)]
    assert logs[0]["refusal_class"] == "margin"
