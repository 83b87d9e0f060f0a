"""Order management: tracked orders, pending exposure and planning of actions."""

from market_maker.orders.manager import (
    OrderManager,
    OrderState,
    TrackedOrder,
    rejection_backoff_s,
)

__all__ = ["OrderManager", "OrderState", "TrackedOrder", "rejection_backoff_s"]
