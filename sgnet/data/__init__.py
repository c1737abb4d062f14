"""Datasets (YouTube-VIS format), training/test mappers, video reading, the synthetic dataset."""
