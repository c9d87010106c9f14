"""Floor 1, network blocks: attention with a static KV cache, RoPE, norms, ViT, LlamaGen and DiT blocks,
the vector quantiser."""
