"""Shared fixtures. The torchvision shim must run before anything imports torchvision."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness import _tv_shim  # noqa: E402

_tv_shim.install()
