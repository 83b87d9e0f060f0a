"""Order management: tracked orders, pending exposure and planning of actions."""

from market_maker.orders.manager import OrderManager, OrderState, TrackedOrder

__all__ = ["OrderManager", "OrderState", "TrackedOrder"]
