"""COCO 2017 categories -> the classes of the video datasets, by meaning.

Each table maps a COCO category name (detectron2's spelling, e.g. "tennis racket") to the name of
the target dataset's class its objects belong to. A COCO category maps only when its objects *are*
objects of the target class, as that dataset's annotators used the name; a category whose objects
the target splits between several classes, or has no class for, is left out, and its objects are
dropped from the ``coco_*`` splits (see :mod:`sgnet.data.datasets.coco`). Left out on purpose:

* COCO "mouse" is the computer mouse, not the animal of YouTube-VIS's "mouse"; "teddy bear" is
  no "bear"; "bicycle" is no "motorbike" and "skis" are no "snowboard" (same spelling or a near
  neighbour is not the same thing).
* COCO "bird" covers every bird, while every target splits birds between species classes
  (YouTube-VIS 2019: parrot, duck, owl, eagle; 2021: bird next to duck and parrot; OVIS: Bird,
  Poultry, Parrot): no single label is right for a COCO bird.
* COCO "bus": YouTube-VIS's "truck" is a goods vehicle, and neither YouTube-VIS has a bus class.
* Target classes without a COCO category (ape, monkey, hand, lizard, fish, fox, deer, tiger ...)
  get no COCO objects.
"""

__all__ = ["COCO_TO_YTVIS_2019", "COCO_TO_YTVIS_2021", "COCO_TO_OVIS", "COCO_MAPPINGS"]

COCO_TO_YTVIS_2019 = {
    "person": "person",
    # YouTube-VIS 2019's "sedan" is its class for cars of any body style (2021's list has "car"
    # in its place), which is what COCO's "car" holds.
    "car": "sedan",
    "motorcycle": "motorbike",
    "airplane": "airplane",
    "train": "train",
    "truck": "truck",
    "boat": "boat",
    "cat": "cat",  # COCO's cats are house cats; tigers and leopards are their own classes there
    "dog": "dog",
    "horse": "horse",
    "cow": "cow",
    "elephant": "elephant",
    # COCO's bears are mostly brown, black and polar bears; the giant panda, a class of its own
    # in every target, is at most a rare exception there.
    "bear": "bear",
    "zebra": "zebra",
    "giraffe": "giraffe",
    "skateboard": "skateboard",
    "surfboard": "surfboard",
    "snowboard": "snowboard",
    "tennis racket": "tennis_racket",
}

COCO_TO_YTVIS_2021 = {
    "person": "person",
    "car": "car",
    "motorcycle": "motorbike",
    "airplane": "airplane",
    "train": "train",
    "truck": "truck",
    "boat": "boat",
    "cat": "cat",
    "dog": "dog",
    "horse": "horse",
    "cow": "cow",
    "elephant": "elephant",
    "bear": "bear",
    "zebra": "zebra",
    "giraffe": "giraffe",
    "frisbee": "flying_disc",  # the 2021 class for frisbees
    "skateboard": "skateboard",
    "surfboard": "surfboard",
    "snowboard": "snowboard",
    "tennis racket": "tennis_racket",
}

COCO_TO_OVIS = {
    "person": "Person",
    "cat": "Cat",
    "dog": "Dog",
    "horse": "Horse",
    "sheep": "Sheep",
    "cow": "Cow",
    "elephant": "Elephant",
    "bear": "Bear",
    "zebra": "Zebra",
    "giraffe": "Giraffe",
    "bicycle": "Bicycle",
    "motorcycle": "Motorcycle",
    "airplane": "Airplane",
    "boat": "Boat",
    # OVIS's "Vehical" (sic) is its class for motor vehicles other than motorcycles (which, like
    # bicycles, airplanes and boats, have classes of their own): COCO's cars, buses and trucks.
    # Whether its annotators would call a train a vehicle is not known here, so COCO's "train"
    # is left out rather than guessed.
    "car": "Vehical",
    "bus": "Vehical",
    "truck": "Vehical",
}

# target dataset (as in sgnet.data.datasets.builtin) -> its table
COCO_MAPPINGS = {
    "ytvis_2019": COCO_TO_YTVIS_2019,
    "ytvis_2021": COCO_TO_YTVIS_2021,
    "ovis": COCO_TO_OVIS,
}
