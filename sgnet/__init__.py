"""SG-Net: Spatial Granularity Network for one-stage video instance segmentation (detectron2 plugin).

``import sgnet`` makes detectron2 usable on this environment (:mod:`sgnet.compat`) and registers
the meta-architecture ``SGNet``, the builtin datasets and the ``ytvis`` evaluator.
"""
try:
    import detectron2  # noqa: F401
except ModuleNotFoundError as e:  # pragma: no cover - exercised by tests in a subprocess
    raise ModuleNotFoundError(
        "sgnet needs detectron2, which is not importable in this environment "
        f"({e}). Run `make install` in the sgnet checkout (it installs detectron2 when missing), or "
        "build detectron2 from source: "
        "https://detectron2.readthedocs.io/en/latest/tutorials/install.html"
    ) from e

from . import compat

compat.apply()

from . import data, evaluation, modeling, tracking  # noqa: E402,F401  (registration)
from .config import add_sgnet_config, load_config  # noqa: E402

__version__ = "0.1.0"


def environment_summary() -> str:
    """One line naming the versions in use and the compatibility accommodations applied."""
    import torch
    import torchvision

    accommodations = ", ".join(compat.applied) or "none"
    return (
        f"sgnet {__version__}, detectron2 {detectron2.__version__}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}; compat: {accommodations}"
    )
