"""Floor 4, many runs from one YAML: suites (the shipped *.yaml here), their entries and sweeps, and the
ablation suite."""
