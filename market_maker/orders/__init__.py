"""Order management: tracked orders, their states, pending exposure, reconciliation with venue
snapshots and planning of actions."""

from market_maker.orders.manager import OrderCounters, OrderManager, rejection_backoff_s
from market_maker.orders.state import TRANSITIONS, OrderState, TrackedOrder, Trigger

__all__ = [
    "TRANSITIONS",
    "OrderCounters",
    "OrderManager",
    "OrderState",
    "TrackedOrder",
    "Trigger",
    "rejection_backoff_s",
]
