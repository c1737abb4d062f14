"""File formats shared by :mod:`sgnet.data` and :mod:`sgnet.evaluation` (and the converters):
readers, validators and encoders that depend on neither package.

- :mod:`.rle`: the per-frame mask encodings of YouTube-VIS files (RLE, polygons).
"""
