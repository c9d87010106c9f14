"""alitok-bench: the engine (registry, interfaces, config, data, sampling, metrics, speed, records, cli).

Importing the package imports no torch: the torchvision shim (``harness/core/_tv_shim.py``) is installed
just before torchvision's first import, so ``alitok-bench --help`` and ``list`` start in a blink.
"""

import os as _os

# `fetch` goes online unless the user asked for offline mode (harness/fetch/hub.py)
HF_HUB_OFFLINE_BY_USER = "HF_HUB_OFFLINE" in _os.environ
_os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness.core import _tv_shim  # noqa: E402

_tv_shim.install_on_first_import()

__version__ = "0.1.0"
