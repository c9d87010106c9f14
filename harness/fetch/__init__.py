"""``alitok-bench fetch``'s engine: the table of official files and how each is downloaded and verified.

- ``catalog.py``: every official file (name in the weights root, home, digest rule, upstream source) and
  what each registry entry, metric and protocol needs.
- ``store.py``: the weights root, the digest ledger (trust on first use), per-file locks.
- ``download.py``: HTTPS with resume (HTTP Range), temp file in the same folder, fsync, ``os.replace``.
- ``hub.py``: files on the Hugging Face Hub through ``hf_hub_download`` (its cache, revisions, offline mode).
Bottom floor: imports only ``errors``, ``io`` and ``locks`` (``huggingface_hub`` lazily).
"""
