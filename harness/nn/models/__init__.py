"""Floor 1, the classes every family builds its plugin from: the AR and diffusion Generators and the
tokenizer wrapper."""
