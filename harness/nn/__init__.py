"""Floor 1, model parts shared by AliTok and the baselines (one copy each), one folder per role:
``layers`` (blocks), ``samplers`` (sampling loops), ``models`` (Generator and tokenizer classes),
``kernels`` (CPU inference kernels), ``checkpoints`` (checkpoint I/O)."""
