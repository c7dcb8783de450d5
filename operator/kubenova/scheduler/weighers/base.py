"""The weigher contract, after nova/weights.py: a raw value per host, normalised by the caller
to 0..1 over the candidates, times the weigher's multiplier; the sums rank the hosts."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.interface import RequestSpec


class BaseHostWeigher(abc.ABC):
    name: ClassVar[str]
    #: used when the configuration names no multiplier for this weigher (Nova's defaults)
    default_multiplier: ClassVar[float] = 1.0

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = cls.__name__

    @abc.abstractmethod
    def raw_weight(self, host: HostState, spec: RequestSpec) -> float:
        """Higher is more preferred before the multiplier is applied."""

    def raw_weights(self, table: HostTable, spec: RequestSpec) -> np.ndarray:
        """The fast path: raw_weight of every row at once. This default asks per row; a
        weigher overrides it with array operations giving the same values."""
        return np.array([self.raw_weight(table.host(i), spec) for i in range(len(table))])


def normalize(values: Sequence[float]) -> list[float]:
    """Min-max to 0..1; all-equal values weigh 0 (they cannot rank anything)."""
    if not values:
        return []
    low, high = min(values), max(values)
    if high == low:
        return [0.0 for _ in values]
    return [(v - low) / (high - low) for v in values]


def normalize_array(values: np.ndarray) -> np.ndarray:
    """normalize() over an array, with the same arithmetic (so the same floats)."""
    if values.size == 0:
        return values.astype(float)
    low, high = values.min(), values.max()
    if high == low:
        return np.zeros(values.shape, dtype=float)
    return (values - low) / (high - low)
