"""cupy.cuda of the host emulation: one device (0) with 4 multiprocessors, each holding 2 blocks of
a kernel at once (driver.occupancyMaxActiveBlocksPerMultiprocessor); streams on which work runs
at once (every launch and copy has finished when it returns) unless the stream is capturing a graph,
which records the launches and copies for Graph.launch to run again; pinned memory that is host
memory; events that read the host clock."""

from __future__ import annotations

import ctypes
import time
import types

_current = [0]


def _memcpy_async(dst: int, src: int, size: int, kind: int, stream: int) -> None:
    if kind != 1:
        raise ValueError(f"fake cupy: memcpyAsync kind {kind} (only host to device, 1, is emulated)")
    work = lambda: ctypes.memmove(dst, src, size)  # noqa: E731
    _streams.get(stream, _null).run(work)


# Blocks of a kernel one multiprocessor holds at once, as the emulation says for every kernel and block size.
EMULATED_BLOCKS_PER_MULTIPROCESSOR = 2


def _occupancy(function, block_size: int, dynamic_shared_memory: int) -> int:
    if not 0 < block_size <= 1024:
        raise ValueError(f"fake cupy: block size {block_size}")
    return EMULATED_BLOCKS_PER_MULTIPROCESSOR


driver = types.SimpleNamespace(occupancyMaxActiveBlocksPerMultiprocessor=_occupancy)

runtime = types.SimpleNamespace(
    getDevice=lambda: _current[0],
    getDeviceCount=lambda: 1,
    getDeviceProperties=lambda device: {"name": b"host emulation (fake CuPy)", "multiProcessorCount": 4},
    memcpyHostToDevice=1,
    memcpyAsync=_memcpy_async,
)


class PinnedMemoryPointer(bytearray):
    """Pinned host memory: here a bytearray (NumPy views it through the buffer protocol) with .ptr."""

    @property
    def ptr(self) -> int:
        return ctypes.addressof((ctypes.c_char * len(self)).from_buffer(self))


def alloc_pinned_memory(size: int) -> PinnedMemoryPointer:
    return PinnedMemoryPointer(size)


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
        self.attributes = {"MultiProcessorCount": 4, "CooperativeLaunch": 1}
        self.compute_capability = "90"


class Stream(_Synchronous):
    """Runs work at once, or records it while capturing (begin_capture ... end_capture -> Graph)."""

    _next_ptr = [0x1000]

    def __init__(self, null: bool = False, non_blocking: bool = False, ptr: int = 0):
        if null:
            self.ptr = 0
        else:
            self.ptr = Stream._next_ptr[0]
            Stream._next_ptr[0] += 0x10
        self._captured = None
        _streams[self.ptr] = self

    def __enter__(self):
        _current_streams.append(self)
        return self

    def __exit__(self, *exc):
        _current_streams.remove(self)
        return False

    def run(self, work) -> None:
        if self._captured is not None:
            self._captured.append(work)
        else:
            work()

    def is_capturing(self) -> bool:
        return self._captured is not None

    def begin_capture(self, mode=None) -> None:
        if self.ptr == 0:
            raise RuntimeError("fake cupy: the null stream cannot capture (as in CUDA)")
        if self._captured is not None:
            raise RuntimeError("fake cupy: already capturing")
        self._captured = []

    def end_capture(self) -> "Graph":
        if self._captured is None:
            raise RuntimeError("fake cupy: not capturing")
        graph, self._captured = Graph(self._captured), None
        return graph

    def wait_event(self, event) -> None:
        if self._captured is not None:
            raise RuntimeError("fake cupy: wait_event on a capturing stream is not emulated")


class Graph:
    """The launches and copies a capture recorded, run again in order by launch()."""

    def __init__(self, work):
        self._work = list(work)

    def launch(self, stream=None) -> None:
        if (stream or get_current_stream()).is_capturing():
            raise RuntimeError("fake cupy: a graph launched on a capturing stream is not emulated")
        for work in self._work:
            work()


_streams: dict = {}
_null = Stream(null=True)
_current_streams: list = []


def get_current_stream() -> Stream:
    return _current_streams[-1] if _current_streams else _null


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
