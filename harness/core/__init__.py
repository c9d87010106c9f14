"""Floor 1, the basics every floor uses: errors, atomic file I/O, folder locks, YAML config, the registry
and its built-in entries, the plugin interfaces, devices, mean and sd, the torchvision shim."""
