"""O(1) incremental estimators: Hawkes trade intensity, Welford volatility, fill intensity."""

from market_maker.estimators.hawkes import HawkesFit, IncrementalHawkes, fit_hawkes
from market_maker.estimators.intensity import FillIntensityEstimator
from market_maker.estimators.volatility import IncrementalVolStats

__all__ = [
    "FillIntensityEstimator",
    "HawkesFit",
    "IncrementalHawkes",
    "IncrementalVolStats",
    "fit_hawkes",
]
