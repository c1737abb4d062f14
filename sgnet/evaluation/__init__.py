"""Video instance segmentation evaluation (official YouTube-VIS metric)."""
