"""Model parts shared by AliTok and the baselines (one copy each): attention with a static KV
cache, RoPE, norms, ViT blocks, VQ, the AR sampling loop, diffusion toolkits, checkpoint I/O."""
