"""File formats shared by :mod:`sgnet.data` and :mod:`sgnet.evaluation` (and the converters):
readers, validators and encoders that depend on neither package.

- :mod:`.rle`: the per-frame mask encodings of YouTube-VIS files (RLE, polygons).
- :mod:`.indexed_png`: the per-frame mask PNGs of video object segmentation (pixel = object id).
- :mod:`.segmentation`: the one check of a segmentation (RLE or polygons) for every reader.
- :mod:`.ytvis`: the YouTube-VIS annotation file reader, for the loader and the evaluator.
- :mod:`.video_split`: the fixed rule splitting a file's videos into training and held-out parts.
- :mod:`.coco`: the check of COCO instances files before detectron2 loads them.
- :mod:`.records`: what those readers share (JSON reading, value types, categories, ids).
"""
