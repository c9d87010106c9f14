"""Built-in plugins as lazy ``"module:Attr"`` targets (lm-eval's MODEL_MAPPING pattern).

Listing names imports none of these modules. Outside packages add theirs through the
``alitok_bench.plugins`` entry-point group (see ``harness.registry.load_plugins``).
To add a model: write its factory, then add one line here.
"""
BUILTIN: dict[str, dict[str, object]] = {
    "generators": {
        "real-data": ("harness.data.real_data:RealDataGenerator",
                      "held-out real images of the requested classes (the FID floor row)"),
        "alitok-tiny": ("alitok.plugin:tiny_generator", "tiny AliTok AR + tokenizer trained on natural patches (committed)"),
        "alitok-b": ("alitok.plugin:alitok_b", "AliTok-B 177M (official checkpoint required: --set model.checkpoint=...)"),
        "alitok-l": ("alitok.plugin:alitok_l", "AliTok-L 318M (official checkpoint required)"),
        "alitok-xl": ("alitok.plugin:alitok_xl", "AliTok-XL 662M (official checkpoint required)"),
        "dit-xl-2": ("baselines.dit:dit_xl_2", "DiT-XL/2 675M + SD VAE, DDPM 250 steps, cfg 1.5 (DiT-XL-2-256x256.pt + VAE)"),
        "sit-xl-2": ("baselines.sit:sit_xl_2", "SiT-XL/2 675M + SD VAE, flow SDE 250 steps, cfg 1.5 (SiT-XL-2-256.pt + VAE)"),
        "lightningdit-xl-1": ("baselines.lightningdit:lightningdit_xl_1",
                              "LightningDiT-XL/1 + VA-VAE, Euler 250, shift 0.3, cfg 6.7 interval 0.125"),
        "dit-tiny": ("baselines.dit:dit_tiny", "tiny pixel-space DiT (DDPM, learned variance) on natural patches (committed)"),
        "flow-tiny": ("baselines.sit:flow_tiny", "tiny pixel-space flow model (velocity, Euler) on natural patches (committed)"),
    },
    "tokenizers": {
        "alitok": ("alitok.plugin:alitok_tokenizer", "AliTok 273-token tokenizer (official AliTok.pth required)"),
        "alitok-tiny": ("alitok.plugin:tiny_tokenizer", "tiny AliTok tokenizer trained on natural patches (committed)"),
    },
    "metrics": {
        # pure functions from features (float64, ADM semantics); the pipeline is harness.metrics.evaluate
        "fid": ("harness.metrics.fid:frechet_distance", "FID: Fréchet distance of pool3 statistics (ADM)"),
        "is": ("harness.metrics.isc:inception_score", "Inception Score, ADM in-order chunks of 5000 (or torch-fidelity mode)"),
        "sfid": ("harness.metrics.fid:frechet_distance", "sFID: Fréchet distance on Mixed_6d.branch1x1[:7] (2023-d)"),
        "prec": ("harness.metrics.prc:precision_recall", "improved precision, k=3, samples vs the reference manifold"),
        "recall": ("harness.metrics.prc:precision_recall", "improved recall, k=3, reference images vs the sample manifold"),
        "kid": ("harness.metrics.kid:kernel_inception_distance", "KID: unbiased MMD^2, cubic kernel, seeded subsets"),
    },
    "suites": {
        "demo": ("harness.suites:demo", "embedded natural patches, 32 px: real-data floor + tiny AliTok (CPU, minutes)"),
    },
    # train configs name their trainer: `trainer: alitok-stage1`
    "trainers": {
        "alitok-stage1": ("alitok.train.tokenizer_stage1:train_stage1",
                          "AliTok tokenizer stage 1: encoder + VQ + causal decoder with aux prefix head"),
        "alitok-stage2": ("alitok.train.tokenizer_stage2:train_stage2",
                          "AliTok tokenizer stage 2: frozen encoder/codebook, buffer-token bidirectional decoder"),
        "alitok-ar": ("alitok.train.ar:train_ar",
                      "AliTok AR generator on pretokenised codes (label dropout, held-out next-token accuracy)"),
        "diffusion-tiny": ("baselines.train_diffusion:train_diffusion",
                           "tiny pixel-space DiT: DDPM (MSE + VLB) or flow (velocity MSE), EMA export"),
    },
}
