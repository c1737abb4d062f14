"""Placeholder for ``detectron2._C`` (the compiled C++ extension) in a python-only detectron2.

One source, two uses; it is kept in sgnet's repository as ``sgnet/_detectron2_c_placeholder.py``:

* ``tools/install_detectron2.py`` copies this file verbatim to ``detectron2/_C.py`` in the
  detectron2 v0.6 python sources it installs, so that detectron2 imports on its own:
  ``layers.deform_conv``, ``layers.rotated_boxes``, ``layers.roi_align_rotated`` and
  ``evaluation.fast_eval_api`` import ``_C`` at module import time.
* ``sgnet.compat`` loads it as ``detectron2._C`` at ``import sgnet`` for another python-only
  detectron2 that has no ``_C`` (for example detectron2 main's python sources on ``PYTHONPATH``).

Every op raises a ``RuntimeError`` naming it when it is *called*. The build-information queries
that detectron2's ``collect_env_info`` makes answer truthfully instead: they describe the build,
they are not ops. Dunder names stay missing (``AttributeError``): torch's ``inspect.getmodule``
walks ``sys.modules`` while torchvision registers its ops, and a callable answer for a dunder
crashes ``import torchvision``.

Self-contained on purpose (standard library only, no import of sgnet): it is copied into
detectron2 and must work there without sgnet.
"""

_NO_EXTENSION = "none (python-only detectron2, no compiled extension)"


def get_compiler_version():
    return _NO_EXTENSION


def get_cuda_version():
    return _NO_EXTENSION


def has_cuda():
    return False


def __getattr__(name):
    # Only names not defined above get here (PEP 562).
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def missing_op(*args, **kwargs):
        raise RuntimeError(
            f"detectron2._C.{name} was called, but this detectron2 has no compiled C++ "
            "extension (python-only install). SG-Net does not need it; the caller does. "
            "Build detectron2 from source to use this op: "
            "https://detectron2.readthedocs.io/en/latest/tutorials/install.html"
        )

    missing_op.__name__ = name
    return missing_op
