"""Small configs and hand-drawn scenes shared by the model tests: ``tools/toy_scene.py`` (which
``tools/gpu_check.py`` uses too; tools may not import tests), and the release's loss settings."""
from app_fixtures import load_script

_toy_scene = load_script("tools/toy_scene.py", "sgnet_toy_scene")
REPO_CONFIGS = _toy_scene.REPO_CONFIGS
tiny_cfg = _toy_scene.tiny_cfg
two_object_scene = _toy_scene.two_object_scene
instances_from_masks = _toy_scene.instances_from_masks
pair_sample = _toy_scene.pair_sample
train = _toy_scene.train


# The release's training-loss behaviour (the real configs' defaults), which the toy config
# replaces with the project's variants.
RELEASE_LOSSES = {
    "MODEL.SGNET.MASK.MAX_TRAIN_INSTANCES": 0,
    "MODEL.SGNET.MASK.WEIGHTS_PER_IMAGE": True,
    "MODEL.SGNET.MASK.BINARY_TARGETS": True,
    "MODEL.SGNET.TRACK.LOSS_PER_IMAGE": True,
}
