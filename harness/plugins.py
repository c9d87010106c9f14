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
    "metrics": {},
    "suites": {
        "demo": ("harness.suites:demo", "embedded natural patches, 32 px: real-data floor + tiny AliTok (CPU, minutes)"),
    },
    # train configs name their trainer: `trainer: alitok-stage1`
    "trainers": {},
}
