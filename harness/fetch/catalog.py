"""The official files, one ``CatalogFile`` each, with the upstream file that names its home.

Every URL, Hub repository, file name and Google Drive id below is copied from the upstream README or
code named in ``cited``. No upstream publishes a full sha256 for these files, so each is checked by
trust on first use (``store.py``), except where the name itself pins a digest prefix (torch.hub's
``NAME-<sha256 prefix>.pth`` convention). ``NEEDS`` maps registry names to the files their factories
take; ``FEATURE_NEEDS`` and ``PROTOCOL_NEEDS`` do the same for metrics' networks and protocols.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Literal

MIRROR_ENV = "ALITOK_BENCH_FETCH_MIRROR"  # replaces scheme://host of direct URLs (tests: a loopback server)


@dataclasses.dataclass(frozen=True)
class CatalogFile:
    name: str  # path under the weights root: the official file name
    what: str
    kind: Literal["url", "hub", "gdrive"]
    cited: str  # upstream repository + file that gives the home
    url: str | None = None  # kind url
    repo_id: str | None = None  # kind hub
    filename: str | None = None  # kind hub: the file inside the repository
    revision: str = "main"  # kind hub
    gdrive_id: str | None = None  # kind gdrive
    sha256: str | None = None  # a full digest upstream publishes (none do today)
    sha256_prefix: str | None = None  # a digest prefix the official name carries (torch.hub convention)
    size: int | None = None  # bytes, where upstream states it

    def source(self) -> str:
        if self.kind == "url":
            return self.resolved_url()
        if self.kind == "hub":
            return f"hf://{self.repo_id}/{self.filename}@{self.revision}"
        return f"https://drive.google.com/file/d/{self.gdrive_id}/view (Google Drive: manual step)"

    def resolved_url(self) -> str:
        mirror = os.environ.get(MIRROR_ENV)
        if not mirror or not self.url:
            return self.url or ""
        rest = self.url.partition("://")[2]
        return mirror.rstrip("/") + "/" + rest.partition("/")[2]

    def digest_rule(self) -> str:
        if self.sha256:
            return "pinned sha256"
        if self.sha256_prefix:
            return f"sha256 prefix {self.sha256_prefix} (in the official name) + trust on first use"
        return "trust on first use"


_ALITOK = "ali-vilab/alitok README.md (Download Trained Models)"
_ADM = (
    "openai/guided-diffusion evaluations/README.md; also ali-vilab/alitok README.md, "
    "bytedance/1d-tokenizer README_RAR.md (wget line)"
)
_LLAMAGEN = "FoundationVision/LlamaGen README.md (class-conditional image generation tables)"
_RAR = "bytedance/1d-tokenizer README_RAR.md and sample_imagenet_rar.py (hf_hub_download)"
_TITOK = "bytedance/1d-tokenizer README_TiTok.md and configs/infer/TiTok/*.yaml (hf_hub_download)"
_LDIT = "hustvl/LightningDiT README.md (Inference with Pre-trained Models)"
_SDVAE = (
    "facebookresearch/DiT sample_ddp.py and willisma/SiT sample_ddp.py "
    "(AutoencoderKL.from_pretrained(f'stabilityai/sd-vae-ft-{args.vae}'), --vae default ema)"
)


def _gdrive(name: str, what: str, gid: str) -> CatalogFile:
    return CatalogFile(name, what, "gdrive", _ALITOK, gdrive_id=gid)


def _hub(name: str, what: str, repo: str, cited: str, filename: str | None = None) -> CatalogFile:
    return CatalogFile(name, what, "hub", cited, repo_id=repo, filename=filename or name.rsplit("/", 1)[-1])


_FILES = [
    _gdrive("AliTok.pth", "AliTok tokenizer v1", "1Rir4QEJ_HTvZkhcnw9MTfWlSFemcGVIW"),
    _gdrive("alitok_b.bin", "AliTok-B AR generator v1 (177M)", "1PNVX9wqePxRjuOKpt4iw6CpIYLlyJWlX"),
    _gdrive("alitok_l.bin", "AliTok-L AR generator v1 (318M)", "1tmwAa724pNY4FgUsLne2VJVGoK_TBuMa"),
    _gdrive("alitok_xl.bin", "AliTok-XL AR generator v1 (662M)", "1Vu0UsQfqzZ8HMKFqE2tIGdAcJ6zPXvFd"),
    CatalogFile(
        "VIRTUAL_imagenet256_labeled.npz",
        "ADM reference batch, ImageNet 256 (statistics + 10k images)",
        "url",
        _ADM,
        url="https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/256/"
        "VIRTUAL_imagenet256_labeled.npz",
    ),
    CatalogFile(
        "weights-inception-2015-12-05-6726825d.pth",
        "Inception-v3 for FID/IS/sFID/P/R (torch-fidelity layout)",
        "url",
        "toshas/torch-fidelity torch_fidelity/feature_extractor_inceptionv3.py (URL_INCEPTION_V3)",
        url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
        "weights-inception-2015-12-05-6726825d.pth",
        sha256_prefix="6726825d",
    ),
    _hub(
        "vit_large_patch14_dinov2.lvd142m.safetensors",
        "DINOv2 ViT-L/14 for FD-DINOv2 (timm)",
        "timm/vit_large_patch14_dinov2.lvd142m",
        "huggingface/pytorch-image-models timm/models/vision_transformer.py (vit_large_patch14_dinov2.lvd142m: "
        "hf_hub_id='timm/')",
        filename="model.safetensors",
    ),
    *[
        _hub(f, w, "FoundationVision/LlamaGen", _LLAMAGEN)
        for f, w in (
            ("vq_ds16_c2i.pt", "LlamaGen VQ-16 tokenizer (72M)"),
            ("vq_ds8_c2i.pt", "LlamaGen VQ-8 tokenizer (70M)"),
            ("c2i_B_256.pt", "LlamaGen-B 256 (111M)"),
            ("c2i_L_256.pt", "LlamaGen-L 256 (343M)"),
            ("c2i_B_384.pt", "LlamaGen-B 384 (111M)"),
            ("c2i_L_384.pt", "LlamaGen-L 384 (343M)"),
            ("c2i_XL_384.pt", "LlamaGen-XL 384 (775M)"),
            ("c2i_XXL_384.pt", "LlamaGen-XXL 384 (1.4B)"),
            ("c2i_3B_384.pt", "LlamaGen-3B 384 (3.1B)"),
        )
    ],
    _hub("maskgit-vqgan-imagenet-f16-256.bin", "MaskGIT-VQGAN tokenizer (RAR's)", "fun-research/TiTok", _RAR),
    *[_hub(f"rar_{s}.bin", f"RAR-{s.upper()} generator", "yucornetto/RAR", _RAR) for s in ("b", "l", "xl", "xxl")],
    *[
        _hub(f"tokenizer_titok_{s}.bin", f"TiTok-{s.upper()} tokenizer", "fun-research/TiTok", _TITOK)
        for s in ("l32", "b64", "s128")
    ],
    CatalogFile(
        "DiT-XL-2-256x256.pt",
        "DiT-XL/2 256 (EMA weights)",
        "url",
        "facebookresearch/DiT download.py (download_model)",
        url="https://dl.fbaipublicfiles.com/DiT/models/DiT-XL-2-256x256.pt",
    ),
    CatalogFile(
        "SiT-XL-2-256.pt",
        "SiT-XL/2 256 (EMA weights)",
        "url",
        "willisma/SiT download.py (download_model)",
        url="https://www.dl.dropboxusercontent.com/scl/fi/as9oeomcbub47de5g4be0/SiT-XL-2-256.pt"
        "?rlkey=uxzxmpicu46coq3msb17b9ofa&dl=0",
    ),
    *[
        _hub(f"sd-vae-ft-{v}/{f}", f"SD VAE ft-{v} ({f})", f"stabilityai/sd-vae-ft-{v}", _SDVAE)
        for v in ("ema", "mse")
        for f in ("config.json", "diffusion_pytorch_model.safetensors")
    ],
    _hub(
        "lightningdit-xl-imagenet256-800ep.pt",
        "LightningDiT-XL/1 800 epochs",
        "hustvl/lightningdit-xl-imagenet256-800ep",
        _LDIT,
    ),
    _hub(
        "vavae-imagenet256-f16d32-dinov2.pt", "VA-VAE f16d32 tokenizer", "hustvl/vavae-imagenet256-f16d32-dinov2", _LDIT
    ),
    _hub("latents_stats.pt", "VA-VAE latent mean/std (channel-wise)", "hustvl/vavae-imagenet256-f16d32-dinov2", _LDIT),
]
FILES: dict[str, CatalogFile] = {f.name: f for f in _FILES}

# registry name -> {factory argument: file name}; "options.X" is model.options.X; a folder ends in "/"
NEEDS: dict[str, dict[str, str]] = {
    "alitok": {"checkpoint": "AliTok.pth"},
    **{
        f"alitok-{s}": {"checkpoint": f"alitok_{s}.bin", "tokenizer_checkpoint": "AliTok.pth"} for s in ("b", "l", "xl")
    },
    "vq-16": {"checkpoint": "vq_ds16_c2i.pt"},
    "vq-8": {"checkpoint": "vq_ds8_c2i.pt"},
    **{
        f"llamagen-gpt-{s.lower()}{'' if r == 256 else '-384'}": {
            "checkpoint": f"c2i_{s}_{r}.pt",
            "tokenizer_checkpoint": "vq_ds16_c2i.pt",
        }
        for s, r in (("B", 256), ("L", 256), ("B", 384), ("L", 384), ("XL", 384), ("XXL", 384), ("3B", 384))
    },
    "maskgit-vqgan": {"checkpoint": "maskgit-vqgan-imagenet-f16-256.bin"},
    **{
        f"rar-{s}": {"checkpoint": f"rar_{s}.bin", "tokenizer_checkpoint": "maskgit-vqgan-imagenet-f16-256.bin"}
        for s in ("b", "l", "xl", "xxl")
    },
    **{f"titok-{s}-{n}": {"checkpoint": f"tokenizer_titok_{s}{n}.bin"} for s, n in (("l", 32), ("b", 64), ("s", 128))},
    "dit-xl-2": {"checkpoint": "DiT-XL-2-256x256.pt", "tokenizer_checkpoint": "sd-vae-ft-ema/"},
    "sit-xl-2": {"checkpoint": "SiT-XL-2-256.pt", "tokenizer_checkpoint": "sd-vae-ft-ema/"},
    "lightningdit-xl-1": {
        "checkpoint": "lightningdit-xl-imagenet256-800ep.pt",
        "tokenizer_checkpoint": "vavae-imagenet256-f16d32-dinov2.pt",
        "options.latent_stats": "latents_stats.pt",
    },
}
INCEPTION = "weights-inception-2015-12-05-6726825d.pth"
DINOV2 = "vit_large_patch14_dinov2.lvd142m.safetensors"
# a metric's feature network (harness/metrics/table.py ``Metric.features``) -> its weights file
FEATURE_NEEDS: dict[str, str] = {"inception": INCEPTION, "dinov2": DINOV2}
PROTOCOL_NEEDS: dict[str, tuple[str, ...]] = {
    "imagenet256-gfid50k": ("VIRTUAL_imagenet256_labeled.npz",),
    "imagenet256-smoke5k": ("VIRTUAL_imagenet256_labeled.npz",),
}


def files_of(name_in_needs: str) -> list[str]:
    """Catalog names behind one NEEDS value: a file, or every file of a folder (``sd-vae-ft-ema/``)."""
    if name_in_needs.endswith("/"):
        return [n for n in FILES if n.startswith(name_in_needs)]
    return [name_in_needs]


def entry_files(name: str) -> list[str]:
    """Every catalog file a registry entry needs (empty for entries that need none, e.g. the tiny ones)."""
    return [f for v in NEEDS.get(name, {}).values() for f in files_of(v)]
