"""Data: the embedded natural-patches dataset, ImageNet folders, ADM-format npz I/O, the real-data generator."""
