"""Rotary position embeddings with interleaved pairs (dims 2j, 2j+1 rotate together), base 10000.

A RoPE *table* is a float tensor ``[L, head_dim/2, 2]`` holding (cos, sin) per position and pair;
``apply_rope`` rotates ``x[..., 2j:2j+2]`` by the angle of row ``pos``, pair ``j``.

``cond_prefix_grid_rope_table`` builds the table of a class-conditional image decoder, in sequence
order (AliTok: 1 cond row, K=17 prefix rows, a 16x16 grid from 17; LlamaGen: 1 cond row, no
prefix, a grid from 0):

1. ``num_cond`` rows of zeros for the condition tokens. cos = sin = 0 turns q and k of that token
   into exact zeros: a LlamaGen quirk the released checkpoints were trained with, so we keep it.
2. K prefix tokens: 1D RoPE at positions 0..K-1 over all head_dim/2 pairs, frequencies
   ``base^(-2j/head_dim)``.
3. G*G image tokens in raster order: 2D RoPE with row and column coordinates
   ``grid_start..grid_start+G-1`` (default K, so the grid continues where the prefix stops). The
   first head_dim/4 pairs rotate by the row, the last head_dim/4 by the column, each with
   frequencies ``base^(-2j/(head_dim/2))`` (LlamaGen's 2D table).
"""

from __future__ import annotations

import torch


def rope_frequencies(num_pairs: int, base: float = 10000.0) -> torch.Tensor:
    """``base^(-2j / (2*num_pairs))`` for j = 0..num_pairs-1 (fp32, as upstream computes them)."""
    return 1.0 / (base ** (torch.arange(0, 2 * num_pairs, 2)[:num_pairs].float() / (2 * num_pairs)))


def _table(angles: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)


def rope_table_1d(positions: torch.Tensor, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """``[len(positions), head_dim/2, 2]``: every pair rotates with the 1D position."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
    freqs = rope_frequencies(head_dim // 2, base)
    return _table(torch.outer(positions.float(), freqs))


def rope_table_2d(rows: torch.Tensor, cols: torch.Tensor, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """``[N, head_dim/2, 2]`` for N (row, col) coordinates: first half of the pairs by row, second by col."""
    if head_dim % 4:
        raise ValueError(f"2D RoPE needs head_dim divisible by 4, got {head_dim}")
    freqs = rope_frequencies(head_dim // 4, base)
    angles = torch.cat([torch.outer(rows.float(), freqs), torch.outer(cols.float(), freqs)], dim=-1)
    return _table(angles)


def cond_prefix_grid_rope_table(
    head_dim: int, num_prefix: int, grid: int, num_cond: int = 1, base: float = 10000.0, grid_start: int | None = None
) -> torch.Tensor:
    """``[num_cond + num_prefix + grid*grid, head_dim/2, 2]``: zero cond rows, 1D prefix, 2D grid (module doc)."""
    zeros = torch.zeros(num_cond, head_dim // 2, 2)
    prefix = rope_table_1d(torch.arange(num_prefix), head_dim, base)
    start = num_prefix if grid_start is None else grid_start
    coords = torch.arange(start, start + grid)
    rows = coords.repeat_interleave(grid)  # raster order: row-major
    cols = coords.repeat(grid)
    image = rope_table_2d(rows, cols, head_dim, base)
    return torch.cat([zeros, prefix, image], dim=0)


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [B, H, L, head_dim]`` by ``table [L, head_dim/2, 2]`` (computed in fp32)."""
    if table.shape[0] != x.shape[-2] or table.shape[1] * 2 != x.shape[-1]:
        raise ValueError(f"RoPE table {tuple(table.shape)} does not fit x {tuple(x.shape)}")
    xs = x.float().reshape(*x.shape[:-1], x.shape[-1] // 2, 2)
    cos, sin = table[..., 0], table[..., 1]
    out = torch.stack([xs[..., 0] * cos - xs[..., 1] * sin, xs[..., 1] * cos + xs[..., 0] * sin], dim=-1)
    return out.flatten(-2).type_as(x)
