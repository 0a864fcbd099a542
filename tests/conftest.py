import pytest

import fusedopt
from fusedopt import _core


@pytest.fixture
def restore_runtime():
    """Puts threads, ISA and serial threshold back as they were after a test that changes them."""
    info = _core.cpu_info()
    yield
    fusedopt.set_num_threads(info["num_threads"])
    _core.set_isa(info["isa"])
    _core.set_serial_threshold(info["serial_threshold"])
