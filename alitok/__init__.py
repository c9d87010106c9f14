"""AliTok (arXiv 2506.05289): causal-decoder prefix-token tokenizer and AR generator.

Import-light on purpose: the registry imports ``alitok.plugin`` lazily; model code lives in
``alitok.tokenizer`` (tokenizer), ``alitok.generator`` (AR model) and ``alitok.train`` (trainers).
"""
