"""Held-out AR metrics: next-token accuracy and cross-entropy on val codes, by position group,
beside code-frequency baselines (a tokenizer that uses fewer codes is easier to predict for that
reason alone, so the AR numbers are only meaningful next to these).

Position groups: ``prefix`` (0..K-1), ``first_row`` (the first G image codes, which the aux loss
makes the prefix nearly copy), ``rest`` (the remaining image rows), ``overall``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F


def position_groups(num_prefix: int, grid: int) -> dict[str, slice]:
    t = num_prefix + grid * grid
    return {
        "overall": slice(0, t),
        "prefix": slice(0, num_prefix),
        "first_row": slice(num_prefix, num_prefix + grid),
        "rest": slice(num_prefix + grid, t),
    }


@torch.no_grad()
def evaluate(model, codes: torch.Tensor, labels: torch.Tensor, batch: int = 256) -> dict[str, dict[str, float]]:
    """Teacher-forced, true class (no label dropout), eval mode: mean CE (nats) and top-1 accuracy."""
    was_training = model.training
    model.eval()
    ce_sum = torch.zeros(codes.shape[1], dtype=torch.float64)
    hit_sum = torch.zeros(codes.shape[1], dtype=torch.float64)
    for i in range(0, len(codes), batch):
        c = codes[i : i + batch]
        logits = model(model.training_inputs(c, model.cfg.class_ids(labels[i : i + batch])))
        ce = F.cross_entropy(logits.transpose(1, 2), c, reduction="none")  # [B, T]
        ce_sum += ce.double().sum(0).cpu()
        hit_sum += (logits.argmax(-1) == c).double().sum(0).cpu()
    model.train(was_training)
    n = len(codes)
    out = {}
    for name, sl in position_groups(model.cfg.num_prefix_tokens, model.cfg.grid).items():
        if sl.stop > sl.start:
            out[name] = {
                "ce": float(ce_sum[sl].sum() / (n * (sl.stop - sl.start))),
                "acc": float(hit_sum[sl].sum() / (n * (sl.stop - sl.start))),
            }
    return out


def _baseline(counts: torch.Tensor, val: torch.Tensor) -> dict[str, float]:
    """CE of val codes under add-one-smoothed frequencies; accuracy of always guessing the mode."""
    probs = (counts + 1.0) / (counts.sum(-1, keepdim=True) + counts.shape[-1])
    if probs.ndim == 1:
        logp = probs.log()[val]
        guess = counts.argmax().expand_as(val)
    else:  # per position
        logp = probs.log().gather(1, val.T).T
        guess = counts.argmax(-1).expand_as(val)
    return {"ce": float(-logp.double().mean()), "acc": float((guess == val).double().mean())}


def code_counts(
    chunks: Iterable[torch.Tensor], codebook_size: int, num_tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Code frequencies over sequences given in chunks of [n, T]: (all positions [K], per position [T, K]).
    Streaming, so the ImageNet train codes never need to sit in memory at once."""
    counts = torch.zeros(codebook_size, dtype=torch.float64)
    per_pos = torch.zeros(num_tokens, codebook_size, dtype=torch.float64)
    for c in chunks:
        c = torch.as_tensor(c).cpu().long().reshape(-1, num_tokens)
        counts += torch.bincount(c.reshape(-1), minlength=codebook_size).double()
        per_pos += torch.stack([torch.bincount(c[:, j], minlength=codebook_size) for j in range(num_tokens)]).double()
    return counts, per_pos


def baselines_from_counts(
    counts: torch.Tensor,
    per_pos: torch.Tensor,
    val_codes: torch.Tensor,
    codebook_size: int,
    groups: dict[str, slice] | None = None,
) -> dict[str, dict[str, float]]:
    """``unigram``: one code-frequency table; ``positional_unigram``: one table per position;
    with ``groups`` (``position_groups``) also ``positional_unigram_by_group``: that baseline on
    each group's positions only."""
    val_codes = val_codes.cpu()
    out = {
        "unigram": _baseline(counts, val_codes),
        "positional_unigram": _baseline(per_pos, val_codes),
        "uniform_ce": math.log(codebook_size),
    }
    if groups:
        out["positional_unigram_by_group"] = {
            name: _baseline(per_pos[sl], val_codes[:, sl]) for name, sl in groups.items() if sl.stop > sl.start
        }
    return out


def unigram_baselines(
    train_codes: torch.Tensor, val_codes: torch.Tensor, codebook_size: int, groups: dict[str, slice] | None = None
) -> dict[str, dict[str, float]]:
    """``baselines_from_counts`` of train codes [N, T] held in memory."""
    counts = code_counts([train_codes], codebook_size, train_codes.shape[1])
    return baselines_from_counts(*counts, val_codes, codebook_size, groups)


def stats_from_counts(counts: torch.Tensor) -> dict[str, float]:
    """Codebook usage (fraction of codes used) and perplexity (exp entropy) of a code histogram."""
    p = counts.double() / counts.sum()
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    return {"usage": float((counts > 0).double().mean()), "perplexity": math.exp(entropy), "entropy_nats": entropy}
