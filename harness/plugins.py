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
    },
    "tokenizers": {
        "alitok": ("alitok.plugin:alitok_tokenizer", "AliTok 273-token tokenizer (official AliTok.pth required)"),
        "alitok-tiny": ("alitok.plugin:tiny_tokenizer", "tiny AliTok tokenizer trained on natural patches (committed)"),
    },
    # metrics: one entry each in harness/metrics/table.py (it fills the metrics registry)
    # named protocols (harness/protocols.py); a suite or `sample --protocol NAME` starts from one
    "protocols": {
        "imagenet256-gfid50k": ("harness.protocols:IMAGENET256_GFID50K",
                                "gFID: 50,000 class-balanced samples (i % 1000), 256 px, vs ADM VIRTUAL_imagenet256_labeled.npz"),
        "imagenet256-smoke5k": ("harness.protocols:IMAGENET256_SMOKE5K",
                                "the first 5,000 samples of imagenet256-gfid50k (same seeds), for quick GPU checks"),
        "imagenet256-rfid50k": ("harness.protocols:IMAGENET256_RFID50K",
                                "rFID: ImageNet val 50k, ADM center_crop_arr 256, reconstructions vs val statistics"),
        "demo": ("harness.protocols:DEMO", "embedded natural patches: 20 samples per photo class, 32 px, chunks of 25"),
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
    },
}
