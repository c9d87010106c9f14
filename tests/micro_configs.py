"""The micro AliTok tokenizer the training tests build (8 px patches at 32 px: a 4x4 grid, 64 codes),
one definition for every test file that trains or builds one; a file adds the keys it varies."""

MICRO_TOKENIZER = dict(
    image_size=32,
    patch_size=8,
    codebook_size=64,
    token_dim=4,
    encoder_width=32,
    encoder_layers=1,
    encoder_heads=2,
    decoder_width=32,
    decoder_layers=2,
    decoder_heads=2,
    buffer_tokens=3,
)
