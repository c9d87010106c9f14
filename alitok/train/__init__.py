"""AliTok trainers (registered in the "trainers" section of harness/core/plugins.py):
``alitok-stage1`` and ``alitok-stage2`` (tokenizer), and the AR trainer."""
