"""cupy.cuda of the host emulation: one device (0) with 4 multiprocessors, streams that are accepted
and ignored (every launch has finished when it returns), events that read the host clock."""

from __future__ import annotations

import time
import types

_current = [0]

runtime = types.SimpleNamespace(
    getDevice=lambda: _current[0],
    getDeviceCount=lambda: 1,
    getDeviceProperties=lambda device: {"name": b"host emulation (fake CuPy)", "multiProcessorCount": 4},
)


class _Synchronous:
    """Work here has always finished: synchronize() has nothing to wait for; usable in `with`."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self) -> None:
        pass


class Device(_Synchronous):
    def __init__(self, device: int = None):
        self.id = _current[0] if device is None else device
        if self.id != 0:
            raise ValueError(f"fake cupy: no device {self.id}")
        self.attributes = {"MultiProcessorCount": 4}
        self.compute_capability = "90"


class Stream(_Synchronous):
    def __init__(self, null: bool = False, non_blocking: bool = False, ptr: int = 0):
        self.ptr = ptr


def get_current_stream() -> Stream:
    return Stream(null=True)


class Event(_Synchronous):
    def __init__(self, block: bool = False, disable_timing: bool = False, interprocess: bool = False):
        self._time = None

    def record(self, stream=None) -> None:
        self._time = time.perf_counter()

    @property
    def done(self) -> bool:
        return True  # every launch has finished when it returns


def get_elapsed_time(start: Event, end: Event) -> float:
    """Milliseconds, as CuPy's."""
    return (end._time - start._time) * 1e3
