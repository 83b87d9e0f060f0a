"""O(1) incremental estimators: Hawkes trade intensity, cascade detection, Welford volatility,
fill intensity. ``fit_hawkes`` (offline, needs scipy) is imported only when first used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from market_maker.estimators.adverse import AdverseSelection
from market_maker.estimators.cascade import CascadeDetector
from market_maker.estimators.hawkes import IncrementalHawkes
from market_maker.estimators.intensity import FillIntensityEstimator
from market_maker.estimators.volatility import IncrementalVolStats

if TYPE_CHECKING:
    from market_maker.estimators.fit import HawkesFit, fit_hawkes

__all__ = [
    "AdverseSelection",
    "CascadeDetector",
    "FillIntensityEstimator",
    "HawkesFit",
    "IncrementalHawkes",
    "IncrementalVolStats",
    "fit_hawkes",
]


def __getattr__(name: str) -> Any:
    if name in ("HawkesFit", "fit_hawkes"):
        from market_maker.estimators import fit

        return getattr(fit, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
