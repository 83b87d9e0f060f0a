"""What the venue said when it refused a request: its text, sorted into classes.

A refusal's own words are what an operator needs (``User or API Wallet 0x... does not
exist.`` says more than "3 rejections"), so they travel as data from the venue's answer
(``OrderAck.reason``) to the kill switch's reason, the status, the log and the metrics. The
classes are read from the texts Hyperliquid documents (``reference/hyperliquid-verified.md``
section 2.4) and those the venue adapters and simulators write themselves; a text no rule
knows is ``other``. Pure: no IO, no clock.

Two classes are errors no retry can fix: ``unknown_account`` (the signing wallet is not an
agent of any account: every action will be refused the same way) halts at once, and
``margin`` halts when every refusal of a rejection storm is one (the account cannot carry the
orders at all; one margin refusal among others is the ordinary edge of the limit).
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

__all__ = [
    "FATAL_AT_ONCE",
    "FATAL_WHEN_ALL",
    "RefusalClass",
    "RefusalCount",
    "RefusalTally",
    "classify",
    "refusal_key",
]


class RefusalClass(StrEnum):
    """Why the venue refused a request, by what can be done about it."""

    UNKNOWN_ACCOUNT = "unknown_account"
    """The signer is not an agent of an account with funds: nothing retried can pass."""
    MARGIN = "margin"
    """The account cannot carry the order (margin, margin tier, open-interest cap)."""
    BUDGET = "budget"
    """The venue's request budget or rate limit (wait, trade, or slow down)."""
    POST_ONLY = "post_only"
    """A post-only order would have crossed: the market moved while it travelled (a race)."""
    INVALID = "invalid"
    """The order itself: price, size, minimum value, reduce-only, asset."""
    STALE = "stale"
    """The request came too late: expired, or its nonce already used or out of range."""
    OTHER = "other"


FATAL_AT_ONCE = frozenset({RefusalClass.UNKNOWN_ACCOUNT})
"""Classes that halt on the first refusal."""
FATAL_WHEN_ALL = frozenset({RefusalClass.MARGIN})
"""Classes that halt when every refusal of a rejection storm is one of them."""

# (class, lower-case fragments): the first rule with a fragment in the text wins.
_RULES: tuple[tuple[RefusalClass, tuple[str, ...]], ...] = (
    (
        RefusalClass.UNKNOWN_ACCOUNT,
        ("does not exist", "must deposit before performing actions", "user or api wallet"),
    ),
    (
        RefusalClass.MARGIN,
        ("insufficient margin", "margin tier limit", "open interest", "insufficient balance"),
    ),
    (
        RefusalClass.BUDGET,
        ("too many", "request budget", "rate limit", "throttl"),
    ),
    (RefusalClass.POST_ONLY, ("post only", "post-only", "would have immediately matched")),
    (RefusalClass.STALE, ("expired", "nonce", "voided")),
    (
        RefusalClass.INVALID,
        (
            "invalid",
            "minimum value",
            "tick size",
            "reduce only",
            "too far from oracle",
            "could not immediately match",
            "no liquidity",
        ),
    ),
)


def classify(text: str) -> RefusalClass:
    """The class of a venue's refusal text (``other`` when no rule knows it)."""
    low = text.lower()
    for cls, fragments in _RULES:
        for fragment in fragments:
            if fragment in low:
                return cls
    return RefusalClass.OTHER


def refusal_key(text: str) -> str:
    """``text`` with every run of digits as ``#``: one key for the texts that differ only in
    numbers (prices, counts, ``asset=1``), so they are counted and logged as one."""
    out: list[str] = []
    digit = False
    for ch in text:
        if ch.isdigit():
            if not digit:
                out.append("#")
            digit = True
        else:
            out.append(ch)
            digit = False
    return "".join(out)


class RefusalCount(msgspec.Struct, frozen=True, kw_only=True):
    """One distinct refusal text (its latest wording), its class and how often it came."""

    text: str
    refusal_class: str
    count: int


class _Entry:
    __slots__ = ("cls", "count", "text")

    def __init__(self, text: str, cls: RefusalClass) -> None:
        self.text = text
        self.cls = cls
        self.count = 0


class RefusalTally:
    """Every refusal's text counted by distinct text (see ``refusal_key``) and by class."""

    __slots__ = ("_entries", "by_class", "last", "total")

    _MAX_TEXTS = 256
    """Distinct texts kept; beyond, new ones count under ``other`` only (a venue that puts a
    fresh id in every text cannot grow memory without end)."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self.by_class: dict[RefusalClass, int] = {}
        self.total = 0
        self.last = ""
        """The latest refusal's text, post-only races left out (they are the market moving
        while an order travels, not the venue refusing us)."""

    def add(self, text: str) -> RefusalClass:
        """Count one refusal; its class."""
        text = text.strip() or "(the venue gave no reason)"
        cls = classify(text)
        self.total += 1
        if cls is not RefusalClass.POST_ONLY:
            self.last = text
        self.by_class[cls] = self.by_class.get(cls, 0) + 1
        key = refusal_key(text)
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self._MAX_TEXTS:
                return cls
            entry = self._entries[key] = _Entry(text, cls)
        entry.text = text
        entry.count += 1
        return cls

    def counts(self) -> tuple[RefusalCount, ...]:
        """Every distinct text, most frequent first."""
        entries = sorted(self._entries.values(), key=lambda e: -e.count)
        return tuple(
            RefusalCount(text=e.text, refusal_class=str(e.cls), count=e.count) for e in entries
        )

    def count_of(self, text: str) -> int:
        """How often ``text`` (or one differing only in numbers) came."""
        entry = self._entries.get(refusal_key(text))
        return 0 if entry is None else entry.count
