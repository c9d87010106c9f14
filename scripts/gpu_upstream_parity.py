"""Official code against the project on one device (CUDA when lent), with the committed fixture weights.

For each AR family (AliTok, LlamaGen, RAR) the official model is loaded from the fixture files
(tests/fixtures/upstream/<family>, the released layouts) and samples as its script does:
``torch.manual_seed(seed)`` once, then ``generate`` batch after batch on the device (so on CUDA
the draws come from the CUDA generator that call seeded). The project's registry factory loads
the same files and samples two ways: with a device generator seeded like the runner seeds a
``legacy_rank`` stream, and with a fresh CPU generator (``device_generator`` turns it into the
device stream upstream uses). Tokens must be identical; decoded uint8 images too.

Each family runs in its own process (upstream repositories share top-level module names).
Exit 0 only when every family agrees; one JSON line per family on stdout.

  python scripts/gpu_upstream_parity.py --upstream /path/to/checkouts --device cuda
  python scripts/gpu_upstream_parity.py --upstream /path/to/checkouts --device cpu --families alitok  # dry run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("alitok", "llamagen", "rar")
CHECKOUT = {"alitok": "alitok", "llamagen": "LlamaGen", "rar": "1d-tokenizer"}
BATCHES = ([207, 1, 999], [3, 500])


def _official_alitok(fixtures: Path, device):
    import torch
    from modeling.ar import ARModel

    from scripts.upstream_fixtures import make_alitok as mk

    ar = ARModel(
        mk.ar_config(
            mk.AR_SIZES["hidden_size"],
            mk.AR_SIZES["num_hidden_layers"],
            mk.AR_SIZES["num_attention_heads"],
            mk.CODEBOOK,
        )
    )
    ar.load_state_dict(_load(fixtures / "alitok_ar.bin"))
    tok = mk.small_tokenizer()
    tok.load_state_dict(_load(fixtures / "AliTok.pth"))
    ar, tok = ar.eval().to(device), tok.eval().to(device)
    g, power, temp, seed = mk.PRESETS["b"]

    def sample(y):
        return ar.generate(y, guidance_scale=g, randomize_temperature=temp, guidance_scale_pow=power)

    def decode(codes):  # demo_util.sample_fn's quantisation
        return (tok.decode_tokens(codes).clamp(0.0, 1.0) * 255.0).permute(0, 2, 3, 1).to(dtype=torch.uint8)

    options = {
        "architecture": {"depth": 2, "width": 32, "num_heads": 2, "codebook_size": mk.CODEBOOK},
        "tokenizer_architecture": {
            "encoder_width": 32,
            "encoder_layers": 1,
            "encoder_heads": 2,
            "decoder_width": 32,
            "decoder_layers": 1,
            "decoder_heads": 2,
            "codebook_size": mk.CODEBOOK,
        },
    }
    return sample, decode, seed, "alitok-b", fixtures / "alitok_ar.bin", fixtures / "AliTok.pth", options


def _official_llamagen(fixtures: Path, device):
    import torch
    from autoregressive.models.generate import generate
    from autoregressive.models.gpt import ModelArgs, Transformer

    from scripts.upstream_fixtures import make_llamagen as mk

    gpt = Transformer(
        ModelArgs(
            **mk.GPT,
            vocab_size=mk.VQ["codebook_size"],
            block_size=256,
            num_classes=1000,
            cls_token_num=1,
            model_type="c2i",
        )
    )
    gpt.load_state_dict(_load(fixtures / "c2i_gpt.pt")["model"], strict=False)  # sample_c2i.py
    vq = mk.small_vq()
    vq.load_state_dict(_load(fixtures / "vq_ds16_c2i.pt")["model"])
    gpt, vq = gpt.eval().to(device), vq.eval().to(device)
    cfg, interval, temp, top_k, top_p, seed = mk.SAMPLINGS["preset_b"]

    def sample(y):
        return generate(
            gpt,
            y,
            256,
            cfg_scale=cfg,
            cfg_interval=interval,
            temperature=temp,
            top_k=top_k,
            top_p=top_p,
            sample_logits=True,
        )

    def decode(codes):  # sample_c2i_ddp.py's quantisation
        x = vq.decode_code(codes, [codes.shape[0], 8, 16, 16])
        return torch.clamp(127.5 * x + 128.0, 0, 255).permute(0, 2, 3, 1).to(dtype=torch.uint8)

    options = {
        "architecture": {"depth": 2, "width": 32, "num_heads": 2, "vocab_size": mk.VQ["codebook_size"]},
        "tokenizer_architecture": {
            **{k: mk.VQ[k] for k in ("ch", "ch_mult", "num_res_blocks", "z_channels", "codebook_size")},
            "image_size": 32,
        },
    }
    return sample, decode, seed, "llamagen-gpt-b", fixtures / "c2i_gpt.pt", fixtures / "vq_ds16_c2i.pt", options


def _official_rar(fixtures: Path, device):
    import torch
    from modeling.rar import RAR
    from modeling.titok import PretrainedTokenizer

    from scripts.upstream_fixtures import make_rar as mk

    rar = RAR(
        mk.rar_config(
            mk.RAR_SIZES["hidden_size"],
            mk.RAR_SIZES["num_hidden_layers"],
            mk.RAR_SIZES["num_attention_heads"],
            mk.RAR_SIZES["intermediate_size"],
            mk.CODEBOOK,
        )
    )
    rar.load_state_dict(_load(fixtures / "rar_ar.bin"))
    vq = mk.pixel_vq(mk.PIXEL, mk.CODEBOOK, mk.PIXEL["z_channels"])
    vq.load_state_dict(_load(fixtures / "maskgit-vqgan-imagenet-f16-256.bin"))
    rar, vq = rar.eval().to(device), vq.eval().to(device)
    g, power, temp = mk.PRESETS["b"]

    def sample(y):
        return rar.generate(y, guidance_scale=g, randomize_temperature=temp, guidance_scale_pow=power)

    def decode(codes):
        x = PretrainedTokenizer.decode(vq, codes.view(codes.shape[0], 16, 16))
        return (torch.clamp(x, 0.0, 1.0) * 255.0).permute(0, 2, 3, 1).to(dtype=torch.uint8)

    options = {
        "architecture": {"depth": 2, "width": 32, "num_heads": 2, "mlp_hidden": 128, "codebook_size": mk.CODEBOOK},
        "tokenizer_architecture": {
            "hidden_channels": 32,
            "channel_mult": [1, 1, 1],
            "num_res_blocks": 1,
            "z_channels": 32,
            "codebook_size": mk.CODEBOOK,
            "image_size": 64,
        },
    }
    return (
        sample,
        decode,
        mk.SEED,
        "rar-b",
        fixtures / "rar_ar.bin",
        fixtures / "maskgit-vqgan-imagenet-f16-256.bin",
        options,
    )


def _load(path: Path):
    import argparse as _argparse

    import torch

    with torch.serialization.safe_globals([_argparse.Namespace]):
        return torch.load(path, map_location="cpu", weights_only=True)


def check_family(family: str, upstream: Path, device: str) -> dict:
    """In this process: the official samples, then the project's, on ``device``."""
    import torch

    sys.path.insert(0, str(ROOT))
    from harness.core import _tv_shim

    _tv_shim.install()
    sys.path.insert(0, str((upstream / CHECKOUT[family]).resolve()))
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 both sides
    build = {"alitok": _official_alitok, "llamagen": _official_llamagen, "rar": _official_rar}[family]
    fixtures = ROOT / "tests" / "fixtures" / "upstream" / family
    with torch.no_grad():
        sample, decode, seed, name, ckpt, tok_ckpt, options = build(fixtures, device)
        labels = [torch.tensor(b, device=device) for b in BATCHES]
        torch.manual_seed(seed)  # the official scripts: once per process (rank 0), then batch after batch
        official = [sample(y) for y in labels]
        official_images = [decode(t) for t in official]

    from harness.core.registry import generators, load_plugins

    load_plugins()
    gen = generators.get(name)(device=device, checkpoint=ckpt, tokenizer_checkpoint=tok_ckpt, **options)
    result = {"family": family, "device": str(torch.device(device)), "generator": name, "seed": seed}
    streams = {
        "device_generator": torch.Generator(device=device).manual_seed(seed),  # the runner's legacy_rank
        "cpu_generator": torch.Generator().manual_seed(seed),
    }  # an API caller's
    ok = True
    for how, stream in streams.items():
        differ_tokens = differ_pixels = 0
        for y, ref, ref_img in zip(labels, official, official_images):
            codes = gen.generate_codes(y, stream)
            differ_tokens += int((codes.long() != ref.long()).sum())
            differ_pixels += int((gen.tokenizer.decode(codes).long() != ref_img.long()).sum())
        result[how] = {"tokens_differing": differ_tokens, "uint8_differing": differ_pixels}
        ok = ok and differ_tokens == 0 and differ_pixels == 0
    result["ok"] = ok
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", type=Path, required=True, help="folder holding alitok/, LlamaGen/, 1d-tokenizer/")
    p.add_argument("--device", default="cuda")
    p.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated subset of {','.join(FAMILIES)}")
    p.add_argument("--family", help=argparse.SUPPRESS)  # the per-family child process
    args = p.parse_args(argv)
    if args.family:
        print(json.dumps(check_family(args.family, args.upstream, args.device)), flush=True)
        return 0
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        print(f"error: --families: unknown {', '.join(unknown)} (known: {', '.join(FAMILIES)})", file=sys.stderr)
        return 2
    missing = [CHECKOUT[f] for f in families if not (args.upstream / CHECKOUT[f]).is_dir()]
    if missing:
        print(f"error: --upstream {args.upstream}: no checkout {', '.join(missing)}", file=sys.stderr)
        return 2
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    status = 0
    for family in families:
        proc = subprocess.run(
            [sys.executable, __file__, "--family", family, "--upstream", str(args.upstream), "--device", args.device],
            env=env,
            capture_output=True,
            text=True,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode or not lines:
            print(json.dumps({"family": family, "ok": False, "error": proc.stderr.strip()[-800:]}))
            status = 1
            continue
        print(lines[-1])
        status |= 0 if json.loads(lines[-1])["ok"] else 1
    print(f"gpu-upstream-parity: {'all agree' if status == 0 else 'DISAGREEMENT or failure'} ({args.device})")
    return status


if __name__ == "__main__":
    sys.exit(main())
