"""Mixed-precision boundaries.

Under autocast (``SOLVER.AMP.ENABLED`` in training, or inference wrapped in ``torch.autocast``)
convolutions and matrix products run in float16 / bfloat16. SG-Net's heads cast their
predictions (logits, box distances, mask coefficients and logits, embeddings) to float32 where
they leave the network, as detectron2 decodes boxes in float32: half-precision coordinates are
off by pixels (bfloat16 keeps 8 significant bits: 0.5 px steps at 100 px). What follows the
network (losses, association) runs with autocast off, so that its own products stay in float32.
"""
from contextlib import contextmanager

import torch


@contextmanager
def autocast_disabled():
    """Context (or decorator) in which no CPU or CUDA autocast applies: ops run in their
    inputs' dtypes."""
    with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
        yield
