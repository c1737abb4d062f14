# Tests use sgnet as a detectron2 user does: `import sgnet` first, which makes detectron2 0.6
# importable on this environment and registers SG-Net.
import sgnet  # noqa: F401
