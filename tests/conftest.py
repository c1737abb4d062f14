import pytest
import torch

# Tests use sgnet as a detectron2 user does: `import sgnet` first, which makes detectron2 0.6
# importable on this environment and registers SG-Net.
import sgnet  # noqa: F401

# The apps call detectron2's setup_logger, which is cached per name: its handlers keep the stream
# of the first call. Made here, under pytest's session-wide capture, they never write to a
# stream a test's capsys has closed ("--- Logging error ---" on stderr).
from detectron2.utils.logger import setup_logger  # noqa: E402

for _name in ("sgnet", "fvcore"):
    setup_logger(name=_name)


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory):
    """A randomly initialised 3-class toy model (the toy dataset's classes): with the score
    threshold at 0 it still detects."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from model_fixtures import tiny_cfg

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    DetectionCheckpointer(build_model(tiny_cfg(**{"MODEL.SGNET.NUM_CLASSES": 3})), save_dir=str(folder)).save("random")
    return folder / "random.pth"
