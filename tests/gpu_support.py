"""Shared by the GPU test modules: skip the whole module without CuPy or a CUDA device."""

import pytest

cupy = pytest.importorskip("cupy")
try:
    HAVE_DEVICE = cupy.cuda.runtime.getDeviceCount() > 0
except Exception:  # noqa: BLE001 - no driver counts as no device
    HAVE_DEVICE = False
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not HAVE_DEVICE, reason="no CUDA device")]
