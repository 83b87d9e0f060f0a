"""Where independent backtests run: local processes (``concurrent.futures``) or a Dask cluster.

A ``Mapper`` calls ``fn(*args)`` for every argument tuple, somewhere, and hands each finished
call to ``done(index, future)`` as it finishes (in any order); ``future.result()`` returns the
value or raises what the call (or the worker running it) raised. Sweeps (one run per point,
scenario and seed) and segmented backtests (one run per day) share these.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from market_maker.errors import ConfigError

__all__ = ["Mapper", "dask_mapper", "local_mapper"]

Mapper = Callable[
    [Callable[..., Any], Sequence[tuple[Any, ...]], Sequence[str], Callable[[int, Any], None]],
    None,
]
"""``mapper(fn, calls, keys, done)``: ``keys`` name the calls (Dask task keys; one per call)."""


def local_mapper(workers: int) -> Mapper:
    """Calls on ``workers`` fresh local processes (spawned: no state shared with this one)."""

    def run(
        fn: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        keys: Sequence[str],
        done: Callable[[int, Any], None],
    ) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        if not calls:
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(fn, *args): i for i, args in enumerate(calls)}
            try:
                for future in as_completed(futures):
                    done(futures[future], future)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    return run


def dask_mapper(address: str) -> Mapper:
    """Calls on the Dask distributed cluster at ``address`` (``tcp://host:8786``)."""

    def run(
        fn: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        keys: Sequence[str],
        done: Callable[[int, Any], None],
    ) -> None:
        try:
            from distributed import Client, as_completed
        except ImportError:
            raise ConfigError(
                "--cluster needs Dask's distributed: pip install -e '.[cluster]'"
            ) from None
        if not calls:
            return
        with Client(address, timeout="20s") as client:  # type: ignore[no-untyped-call]
            futures = [
                client.submit(fn, *args, key=dask_key(key), pure=False)
                for args, key in zip(calls, keys, strict=True)
            ]
            index = {f.key: i for i, f in enumerate(futures)}
            try:
                for future in as_completed(futures):  # type: ignore[no-untyped-call]
                    done(index[future.key], future)
            except BaseException:
                client.cancel(futures)
                raise

    return run


def dask_key(name: str) -> str:
    """A Dask task key for a call named ``name`` (stable, short, free of odd characters)."""
    return "mm-" + hashlib.sha256(name.encode()).hexdigest()[:24]
