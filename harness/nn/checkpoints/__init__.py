"""Floor 1, checkpoint I/O: safe loading and saving, upstream key maps, optimizer state."""
