"""Floor 1, sampling loops: the autoregressive loop, the DDPM toolkit and the flow toolkit."""
