"""Deterministic sharded sampling: plan (index -> label, chunk, seed), shards + manifest, runner, gather."""
