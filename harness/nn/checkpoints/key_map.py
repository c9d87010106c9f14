"""State-dict key renaming, so a model built from shared parts saves and loads an upstream layout.

The shared blocks (``harness.nn.layers.llama.LlamaBlock``, ``harness.nn.layers.vit.Block``) name their parameters
one way (``attn.qkv``); an upstream checkpoint names the same tensors another (``attention.wqkv``).
``install_key_map(model, pairs)`` adds a state-dict post-hook (ours -> upstream) and a load pre-hook
(upstream -> ours), so ``model.state_dict()`` *is* the upstream key list and an upstream file loads
with ``strict=True``. ``named_parameters()`` keeps the shared names.

``pairs`` are ``(ours, upstream)`` substrings matched on whole dotted components
(``".attn.qkv."`` -> ``".attention.wqkv."``); every key gets a leading and trailing dot while it is
rewritten, so a pair may also match a key's first or last component.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def _rename(key: str, pairs: Sequence[tuple[str, str]]) -> str:
    dotted = f".{key}."
    for old, new in pairs:
        dotted = dotted.replace(old, new)
    return dotted[1:-1]


def install_key_map(model: nn.Module, pairs: Sequence[tuple[str, str]]) -> nn.Module:
    """Make ``model.state_dict()`` / ``load_state_dict`` speak the upstream names (see module doc)."""
    forward = tuple(pairs)
    backward = tuple((new, old) for old, new in pairs)
    if any(old == new for old, new in forward):
        raise ValueError("a key-map pair must change the name")

    def rewrite(state_dict, prefix, table):
        # rebuilt in place so the key order stays the module order
        items = [
            (prefix + _rename(k[len(prefix) :], table) if k.startswith(prefix) else k, v) for k, v in state_dict.items()
        ]
        state_dict.clear()
        state_dict.update(items)

    def to_upstream(module, state_dict, prefix, *_):
        rewrite(state_dict, prefix, forward)

    def from_upstream(module, state_dict, prefix, *_):
        rewrite(state_dict, prefix, backward)

    model.register_state_dict_post_hook(to_upstream)
    model.register_load_state_dict_pre_hook(from_upstream)
    return model
