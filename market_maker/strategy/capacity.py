"""How much more each side may rest, given position, limit and pending (unfilled) exposure.

``bid_capacity = max(0, Q - q - pending_bids)`` and ``ask_capacity = max(0, Q + q - pending_asks)``:
one formula for both signs of ``q``. Pending is everything that could still fill. Resting within
capacity, no sequence of fills can take ``q`` past ``Q`` on either side.
"""

from __future__ import annotations

__all__ = ["side_capacity"]


def side_capacity(
    *, position: float, max_position: float, pending_bids: float, pending_asks: float
) -> tuple[float, float]:
    """``(bid_capacity, ask_capacity)`` in contracts; never negative."""
    bid = max_position - position - pending_bids
    ask = max_position + position - pending_asks
    return (bid if bid > 0.0 else 0.0), (ask if ask > 0.0 else 0.0)
