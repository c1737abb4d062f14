"""Converters from the formats users' annotations come in to the official YouTube-VIS json, which
:func:`sgnet.data.load_ytvis_json` loads and the evaluator scores unchanged:

    python -m sgnet.data.convert ytvos SRC --output OUT.json [--category NAME]
    python -m sgnet.data.convert mots SRC --image-root DIR --output OUT.json [--classes 1=car,2=pedestrian]
    python -m sgnet.data.convert cocovid SRC.json --image-root DIR --output OUT.json
    python -m sgnet.data.convert split IN.json --val-fraction 0.1 --seed 0 --output DIR

- ``ytvos`` (:mod:`.ytvos`): the YouTube-VOS / DAVIS / MOSE layout, indexed PNG masks;
- ``mots`` (:mod:`.mots`): MOTSChallenge / KITTI MOTS text files;
- ``cocovid`` (:mod:`.cocovid`): mmdetection 3.x / mmtracking's COCO-video json;
- ``split`` (:mod:`.split`): a file split by video into train and held-out parts.

The last line of stdout is one JSON object, for a converter ``{"json", "image_root", "videos",
"annotations", "categories"}`` (``file_names`` in the json are relative to ``image_root``).
Every converter writes through :class:`.writer.YTVISWriter`: the source's category ids and names
kept, uncompressed column-major RLE as in the official files, ``bboxes`` and ``areas`` from the
masks. A bad source ends in one line naming the file and the problem (exit status 2), and no
output file is left.
"""
from .writer import YTVISWriter, track_record

__all__ = ["YTVISWriter", "track_record"]
