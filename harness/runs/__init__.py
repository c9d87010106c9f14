"""Floor 2, what a run is and what it leaves: run specs and their hashes, the named protocols, run records,
and the training loop every trainer shares."""
