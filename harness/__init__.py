"""alitok-bench: the engine (registry, interfaces, config, data, sampling, metrics, speed, records, cli)."""
import os as _os

_os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness import _tv_shim  # noqa: E402

_tv_shim.install()

__version__ = "0.1.0"
