"""Shared fixtures. The torchvision shim must run before anything imports torchvision."""
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Each test session gets its own weights/feature cache, so no result can come from a cache that an
# earlier run (or older code) left in ~/.cache/alitok-bench. The fid-helper conversion takes < 1 s.
os.environ["ALITOK_BENCH_CACHE"] = tempfile.mkdtemp(prefix="alitok-bench-test-cache-")

from harness import _tv_shim  # noqa: E402

_tv_shim.install()
