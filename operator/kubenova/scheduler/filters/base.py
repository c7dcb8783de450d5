"""The filter contract: a host passes or fails, and a failure says why (logged, counted)."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.interface import RequestSpec


@dataclass(frozen=True)
class FilterResult:
    passed: bool
    reason: str = ""

    @classmethod
    def ok(cls) -> FilterResult:
        return _PASS

    @classmethod
    def fail(cls, reason: str) -> FilterResult:
        return cls(False, reason)


_PASS = FilterResult(True)


class BaseHostFilter(abc.ABC):
    """One yes/no question about a host. Pure: reads the HostState and the RequestSpec only."""

    #: the name used in configuration and in NoValidHost messages (the class name)
    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = cls.__name__

    @abc.abstractmethod
    def host_passes(self, host: HostState, spec: RequestSpec) -> FilterResult: ...

    def mask(self, table: HostTable, spec: RequestSpec) -> np.ndarray:
        """The fast path: which rows of `table` pass, as a bool array. This default asks
        host_passes per row; a filter overrides it with array operations that answer the
        same (tests/unit/scheduler/test_fast_path.py compares them)."""
        return np.array(
            [self.host_passes(table.host(i), spec).passed for i in range(len(table))], dtype=bool
        )
