"""Codebook-collapse remedies of the vector quantiser (harness.nn.layers.vq): LlamaGen's l2-normalised
lookup against a cosine nearest neighbour computed another way, dead-code re-initialisation on a
synthetic collapse, and the state dict (old checkpoints still load)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.nn.layers.vq import VectorQuantizer


def test_l2_lookup_is_the_cosine_nearest_neighbour():
    g = torch.Generator().manual_seed(0)
    q = VectorQuantizer(64, 8, l2_norm=True)
    with torch.no_grad():
        # codes of very different lengths: the squared-L2 lookup of the raw vectors would pick other codes
        q.embedding.weight.copy_(torch.randn(64, 8, generator=g) * torch.rand(64, 1, generator=g) * 10)
    z = torch.randn(500, 8, generator=g) * 3.0
    # independent: the cosine similarity of every (z, code) pair, largest wins
    cos = F.cosine_similarity(z[:, None, :], q.embedding.weight[None, :, :], dim=-1)
    want = cos.argmax(dim=1)
    assert torch.equal(q.codes(z), want)
    zq, codes, _ = q.eval()(z)
    assert torch.equal(codes, want)
    unit = q.embedding.weight / q.embedding.weight.norm(dim=1, keepdim=True)
    torch.testing.assert_close(zq, unit[want])  # the forward value is the unit code
    torch.testing.assert_close(q.lookup(want), unit[want])
    raw = VectorQuantizer(64, 8)
    raw.embedding.weight.data.copy_(q.embedding.weight.data)
    assert not torch.equal(raw.codes(z), want)  # the remedy changes the lookup (else this test shows nothing)


def test_dead_code_reinit_revives_a_collapsed_codebook():
    g = torch.Generator().manual_seed(1)
    q = VectorQuantizer(256, 8)
    with torch.no_grad():  # collapse: 2 codes near the data, 254 far away that no feature ever picks
        q.embedding.weight.copy_(torch.full((256, 8), 50.0))
        q.embedding.weight[:2] = torch.randn(2, 8, generator=g) * 0.1
    z = torch.randn(4096, 8, generator=g)
    assert q.codes(z).unique().numel() <= 2
    live_before = q.embedding.weight[:2].clone()
    q.reinit_every = 2
    q.train()
    for _ in range(3):  # the third forward re-seeds the codes the first two did not use
        q(z.clone().requires_grad_(True))
    assert q.revived == 254 == q.revived_total
    used = q.codes(z).unique().numel()
    assert used > 200  # 254 codes re-seeded at distinct random features: nearly all win some features
    torch.testing.assert_close(q.embedding.weight[:2], live_before)  # live codes untouched
    # a re-seeded code is one of the batch's features
    revived = q.embedding.weight[2:].detach()
    assert (revived[:, None, :] - z[None]).abs().amax(dim=-1).min(dim=1).values.max() == 0


def test_reinit_is_off_in_eval_and_without_grad():
    q = VectorQuantizer(16, 4)
    q.reinit_every = 1
    z = torch.randn(32, 4)
    before = q.embedding.weight.clone()
    for _ in range(3):
        q.eval()(z)
    with torch.no_grad():
        for _ in range(3):
            q.train()(z)
    assert torch.equal(q.embedding.weight, before) and int(q.forwards) == 0


def test_the_state_dict_keys_do_not_change():
    # the counters are non-persistent: checkpoints written before the remedies load strictly
    assert set(VectorQuantizer(16, 4, l2_norm=True).state_dict()) == {"embedding.weight"}
    assert set(VectorQuantizer(16, 4, clustering=True, l2_norm=True).state_dict()) == {
        "embedding.weight",
        "embed_prob",
    }
