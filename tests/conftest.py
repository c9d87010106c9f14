"""Shared fixtures. The torchvision shim must run before anything imports torchvision."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Each test session gets its own weights/feature cache, so no result can come from a cache that an
# earlier run (or older code) left in ~/.cache/alitok-bench. The fid-helper conversion takes < 1 s.
# Removed when the session ends: it reaches ~1 GB, and 530 left behind filled this machine's disk.
os.environ["ALITOK_BENCH_CACHE"] = tempfile.mkdtemp(prefix="alitok-bench-test-cache-")
atexit.register(shutil.rmtree, os.environ["ALITOK_BENCH_CACHE"], ignore_errors=True)

from harness.core import _tv_shim  # noqa: E402

_tv_shim.install()


import pytest  # noqa: E402
import torch  # noqa: E402


class _NCHWDataset(torch.utils.data.Dataset):
    """uint8 NHWC array -> the uint8 NCHW Dataset torch-fidelity's ``calculate_metrics`` reads."""

    def __init__(self, nhwc):
        self.x = torch.from_numpy(nhwc).permute(0, 3, 1, 2).contiguous()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


@pytest.fixture
def nchw_dataset():
    return _NCHWDataset


@pytest.fixture(autouse=True)
def _torch_threads(request):
    """A test runs at the thread count its ``torch_threads(n)`` marker names (fixtures compared bit for bit
    were written at that count), and no test hands a count it set (an in-process bench run) to the next."""
    before = torch.get_num_threads()
    marker = request.node.get_closest_marker("torch_threads")
    if marker is not None:
        torch.set_num_threads(marker.args[0])
    yield
    torch.set_num_threads(before)
