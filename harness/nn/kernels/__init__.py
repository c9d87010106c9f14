"""Floor 1, CPU inference kernels: the C decode-step attention (csrc/), oneDNN Linear on packed weights,
and the per-machine choice between kernels."""
