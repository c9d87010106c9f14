"""Built-in plugins as lazy ``"module:Attr"`` targets (lm-eval's MODEL_MAPPING pattern).

Listing names imports none of these modules. Outside packages add theirs through the
``alitok_bench.plugins`` entry-point group (see ``harness.core.registry.load_plugins``).
To add a model: write its factory, then add one line here.
"""

BUILTIN: dict[str, dict[str, object]] = {
    "generators": {
        "real-data": (
            "harness.data.real_data:RealDataGenerator",
            "held-out real images of the requested classes (the FID floor row)",
        ),
        "alitok-tiny": (
            "alitok.plugin:tiny_generator",
            "tiny AliTok AR + tokenizer trained on natural patches (committed)",
        ),
        "alitok-trained": (
            "alitok.plugin:tiny_generator",
            "AliTok AR + tokenizer files written by `train` (any size: "
            "config and sampling from their metadata); default: the committed tiny ones",
        ),
        "alitok-b": (
            "alitok.plugin:alitok_b",
            "AliTok-B 177M (official checkpoint required: --set model.checkpoint=...)",
        ),
        "alitok-l": ("alitok.plugin:alitok_l", "AliTok-L 318M (official checkpoint required)"),
        "alitok-xl": ("alitok.plugin:alitok_xl", "AliTok-XL 662M (official checkpoint required)"),
        # AR baselines (official checkpoint + tokenizer_checkpoint required)
        **{
            f"llamagen-gpt-{s}": (
                f"baselines.plugin_ar:llamagen_gpt_{s.replace('-', '_')}",
                f"LlamaGen GPT-{s.upper()} c2i + VQ-16 (official c2i_*.pt + vq_ds16_c2i.pt)",
            )
            for s in ("b", "l", "b-384", "l-384", "xl-384", "xxl-384", "3b-384")
        },
        **{
            f"rar-{s}": (f"baselines.plugin_ar:rar_{s}", f"RAR-{s.upper()} + MaskGIT-VQGAN (official rar_{s}.bin)")
            for s in ("b", "l", "xl", "xxl")
        },
        "llamagen-tiny": (
            "baselines.plugin_ar:llamagen_tiny",
            "tiny LlamaGen GPT + tiny VQGAN trained on natural patches (committed)",
        ),
        "titok-ar-tiny": (
            "baselines.plugin_ar:titok_ar_tiny",
            "tiny GPT on tiny TiTok 1D codes, natural patches (committed)",
        ),
        "dit-xl-2": (
            "baselines.dit:dit_xl_2",
            "DiT-XL/2 675M + SD VAE, DDPM 250 steps, cfg 1.5 (DiT-XL-2-256x256.pt + VAE)",
        ),
        "sit-xl-2": (
            "baselines.sit:sit_xl_2",
            "SiT-XL/2 675M + SD VAE, flow SDE 250 steps, cfg 1.5 (SiT-XL-2-256.pt + VAE)",
        ),
        "lightningdit-xl-1": (
            "baselines.lightningdit:lightningdit_xl_1",
            "LightningDiT-XL/1 + VA-VAE, Euler 250, shift 0.3, cfg 6.7 interval 0.125",
        ),
        "dit-tiny": (
            "baselines.dit:dit_tiny",
            "tiny pixel-space DiT (DDPM, learned variance) on natural patches (committed)",
        ),
        "flow-tiny": (
            "baselines.sit:flow_tiny",
            "tiny pixel-space flow model (velocity, Euler) on natural patches (committed)",
        ),
    },
    "tokenizers": {
        "alitok": ("alitok.plugin:alitok_tokenizer", "AliTok 273-token tokenizer (official AliTok.pth required)"),
        "alitok-tiny": ("alitok.plugin:tiny_tokenizer", "tiny AliTok tokenizer trained on natural patches (committed)"),
        "alitok-trained": (
            "alitok.plugin:tiny_tokenizer",
            "an AliTok tokenizer file written by `train` (any size: "
            "config from its metadata); default: the committed tiny one",
        ),
        "vq-16": ("baselines.plugin_ar:vq_16", "LlamaGen VQ-16 (official vq_ds16_c2i.pt required)"),
        "vq-8": ("baselines.plugin_ar:vq_8", "LlamaGen VQ-8 (official vq_ds8_c2i.pt required)"),
        "maskgit-vqgan": (
            "baselines.plugin_ar:maskgit_vqgan",
            "MaskGIT-VQGAN (official maskgit-vqgan-imagenet-f16-256.bin)",
        ),
        **{
            f"titok-{s}": (
                f"baselines.plugin_ar:titok_{s.replace('-', '_')}",
                f"TiTok-{s.upper()} 1D tokenizer (official weights)",
            )
            for s in ("l-32", "b-64", "s-128")
        },
        "vq-tiny": ("baselines.plugin_ar:vq_tiny", "tiny LlamaGen-style VQGAN trained on natural patches (committed)"),
        "titok-tiny": (
            "baselines.plugin_ar:titok_tiny",
            "tiny TiTok-style 1D tokenizer trained on natural patches (committed)",
        ),
    },
    # metrics: one entry each in harness/metrics/table.py (it fills the metrics registry)
    # named protocols (harness/runs/protocols.py); a suite or `sample --protocol NAME` starts from one
    "protocols": {
        "imagenet256-gfid50k": (
            "harness.runs.protocols:IMAGENET256_GFID50K",
            "gFID: 50,000 class-balanced samples (i % 1000), 256 px, vs ADM VIRTUAL_imagenet256_labeled.npz",
        ),
        "imagenet256-smoke5k": (
            "harness.runs.protocols:IMAGENET256_SMOKE5K",
            "the first 5,000 samples of imagenet256-gfid50k (same seeds), for quick GPU checks",
        ),
        "imagenet256-rfid50k": (
            "harness.runs.protocols:IMAGENET256_RFID50K",
            "rFID: ImageNet val 50k, ADM center_crop_arr 256, reconstructions vs val statistics",
        ),
        "demo": (
            "harness.runs.protocols:DEMO",
            "embedded natural patches: 20 samples per photo class, 32 px, chunks of 25",
        ),
    },
    "suites": {
        "demo": (
            "harness.suites.suite:demo",
            "embedded natural patches, 32 px: real-data floor + tiny AliTok (CPU, minutes)",
        ),
    },
    # train configs name their trainer: `trainer: alitok-stage1`
    "trainers": {
        "alitok-stage1": (
            "alitok.train.tokenizer_stage1:train_stage1",
            "AliTok tokenizer stage 1: encoder + VQ + causal decoder with aux prefix head",
        ),
        "alitok-stage2": (
            "alitok.train.tokenizer_stage2:train_stage2",
            "AliTok tokenizer stage 2: frozen encoder/codebook, buffer-token bidirectional decoder",
        ),
        "alitok-ar": (
            "alitok.train.ar:train_ar",
            "AliTok AR generator on pretokenised codes (label dropout, held-out next-token accuracy)",
        ),
        "baselines-tokenizer": (
            "baselines.train_tiny:train_tokenizer",
            "tiny LlamaGen-style VQGAN or TiTok-style 1D tokenizer (MSE + VQ)",
        ),
        "baselines-ar": ("baselines.train_tiny:train_ar", "tiny LlamaGen GPT on codes of a tiny baseline tokenizer"),
        "diffusion-tiny": (
            "baselines.train_diffusion:train_diffusion",
            "tiny pixel-space DiT: DDPM (MSE + VLB) or flow (velocity MSE), EMA export",
        ),
    },
}
