"""SG-Net's config keys. Every key SG-Net reads is added and documented here, once.

Defaults are the authors' release values (mmdetection ``sgnet_r50_caffe_fpn_gn_1x.py``) unless a
comment says otherwise. detectron2's own keys (``MODEL.RESNETS``, ``MODEL.FPN``, ``INPUT``,
``SOLVER`` ...) keep their detectron2 meaning; ``configs/Base-SGNet.yaml`` sets them for SG-Net.
"""
import yaml
from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from .config_checks import check_config_values
from .errors import InvalidInput, check_readable_file


def add_sgnet_config(cfg):
    """Add SG-Net's keys, with their defaults, to a detectron2 config (in place). Idempotent."""
    _add_input_config(cfg)
    _add_dataloader_config(cfg)
    _add_datasets_config(cfg)
    _add_solver_config(cfg)
    _add_model_config(cfg)
    _add_tracker_config(cfg)
    _add_test_config(cfg)


def load_config(config_file: str, opts=()) -> CN:
    """detectron2's defaults + SG-Net's keys, then ``config_file``, then ``KEY VALUE`` overrides;
    checked (:func:`sgnet.config_checks.check_config_values`) and frozen.

    Raises:
        sgnet.errors.MissingInput / InvalidInput: one line naming the file or the override and the
            problem (a missing file, bad YAML, an unknown key, a value of the wrong type or out
            of its range).
    """
    check_readable_file(config_file, "config file")
    cfg = get_cfg()
    add_sgnet_config(cfg)
    try:
        cfg.merge_from_file(config_file)
    except (AssertionError, AttributeError, KeyError, ValueError, TypeError, OSError, yaml.YAMLError) as e:
        # yacs' errors, YAML's, a missing _BASE_; yacs meets a file whose top level is empty, a
        # scalar or a list with an AttributeError or a TypeError that does not say so
        if isinstance(e, (AttributeError, TypeError)) and not _holds_a_mapping(config_file):
            raise InvalidInput(f"{config_file}: not a YAML mapping of config keys ('KEY: value' lines)") from e
        raise InvalidInput(f"{config_file}: {_yacs_message(e)}") from e
    opts = list(opts)
    try:
        cfg.merge_from_list(opts)
    except (AssertionError, KeyError, ValueError, TypeError) as e:
        raise InvalidInput(f"command-line override: {_yacs_message(e)}") from e
    check_config_values(cfg, config_file, overridden=opts[0::2])
    cfg.freeze()
    return cfg


def _holds_a_mapping(config_file: str) -> bool:
    with open(config_file) as f:
        return isinstance(yaml.unsafe_load(f), dict)  # detectron2 reads its configs unsafe too


def _yacs_message(error: Exception) -> str:
    # KeyError's str() quotes its message; the others are plain sentences.
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)


def _add_input_config(cfg):
    # Training pairs: the reference frame is drawn from frames within this many frames of the key
    # frame; 0 means any other frame of the video (release behaviour).
    cfg.INPUT.SAMPLING_FRAME_RANGE = 0
    # Image datasets (the coco_* splits) train on pseudo clip pairs
    # (sgnet.data.COCOPseudoPairMapper): after INPUT's resize and flip, shared by both frames,
    # each frame shows its own crop of the image resized back to the image's size, the pseudo
    # motion. The crop is 1 / zoom of the image's height and width, zoom drawn uniformly in SCALE
    # (>= 1: the crop stays inside the image), and its centre moves from the image's centre by up
    # to MAX_TRANSLATION of the image's size along each axis (uniformly, as far as the crop stays
    # inside). Objects the crop leaves out are absent from that frame. Defaults chosen, not tuned.
    cfg.INPUT.PSEUDO_PAIR = CN()
    cfg.INPUT.PSEUDO_PAIR.SCALE = (1.0, 1.3)
    cfg.INPUT.PSEUDO_PAIR.MAX_TRANSLATION = 0.1


def _add_dataloader_config(cfg):
    # What a training sample is drawn uniformly over: "frame" (release: the dataset is the annotated
    # frames; a video is drawn in proportion to its frames holding a non-crowd object, then its
    # key frame uniformly among them) or "video" (every video equally often, whatever its length).
    # See sgnet.data.build_ytvis_train_sampler; DATALOADER.SAMPLER_TRAIN must stay the default.
    cfg.DATALOADER.SAMPLING_UNIT = "frame"
    # Joint training: one positive number per DATASETS.TRAIN entry, the relative share of training
    # samples drawn from it (normalised to sum to 1), e.g. [3.0, 1.0] for ("ytvis_2019_train",
    # "coco_ytvis_2019_train"). Empty (default): DATASETS.TRAIN is all video or all image
    # datasets, drawn as one dataset. Set, video and image datasets may be mixed, in one batch;
    # within a video dataset draws follow SAMPLING_UNIT, within an image dataset images are
    # uniform. See sgnet.data.MixedDatasetTrainingSampler.
    cfg.DATALOADER.DATASET_RATIOS = []


def _add_datasets_config(cfg):
    # Datasets registered from the config, before anything is built (train_net, the demo,
    # export_model, VideoPredictor: sgnet.data.register_config_datasets): (name, json_file,
    # image_root) triples of YouTube-VIS-format files, e.g. from the command line
    # DATASETS.REGISTER "(('mine_train', 'a/train.json', 'a/frames'),)". Relative paths are
    # relative to the working directory. A name registered already with other files is an error.
    cfg.DATASETS.REGISTER = ()


def _add_solver_config(cfg):
    # "SGD" (detectron2's, the release's) or "ADAMW". AdamW trains the from-scratch toy model
    # several times faster on CPU; SGD's MOMENTUM / NESTEROV are ignored under it.
    cfg.SOLVER.OPTIMIZER = "SGD"
    # AdamW's (beta1, beta2).
    cfg.SOLVER.ADAM_BETAS = (0.9, 0.999)
    # Mixed-precision training (detectron2's SOLVER.AMP.ENABLED; CUDA only): the autocast dtype,
    # "float16" (with detectron2's loss scaling) or "bfloat16" (float32's range: nothing to
    # scale; needs a detectron2 whose AMPTrainer takes a precision, i.e. newer than 0.6).
    cfg.SOLVER.AMP.PRECISION = "float16"


def _add_model_config(cfg):
    cfg.MODEL.SGNET = CN()
    sg = cfg.MODEL.SGNET
    # Number of object categories (YouTube-VIS 2019/2021: 40, OVIS: 25).
    sg.NUM_CLASSES = 40
    # FPN levels the heads run on, finest first (strides 8..128).
    sg.IN_FEATURES = ["p3", "p4", "p5", "p6", "p7"]
    # Convs in the classification / box-regression towers (release: stacked_convs=3, cls uses 2).
    sg.NUM_CLS_CONVS = 2
    sg.NUM_BOX_CONVS = 3
    # Normalisation in all head towers: "GN" (GroupNorm(32), release) or "" (none).
    sg.HEAD_NORM = "GN"
    # Initial foreground probability of the classification logits (focal-loss prior).
    sg.PRIOR_PROB = 0.01
    # Activation on the scaled (l, t, r, b) distances (in strides): "relu" or "exp". The release
    # has none; its negative distances give inverted boxes, which "relu" clips exactly there.
    sg.BOX_REG_ACTIVATION = "relu"
    # Deformable feature alignment of the classification tower: on/off, deformable groups.
    sg.FEATURE_ALIGN = True
    sg.ALIGN_DEFORM_GROUPS = 4
    # FCOS targets: centre-sampling radius in strides. Level ranges follow detectron2's FCOS rule
    # (max distance in (4, 8) strides of the level, P3 from 0, P7 to inf), which for strides
    # 8..128 is the release's (0,64), (64,128), (128,256), (256,512), (512,inf).
    sg.CENTER_SAMPLING_RADIUS = 1.5
    # Losses: focal loss parameters and per-loss weights.
    sg.FOCAL_LOSS_ALPHA = 0.25
    sg.FOCAL_LOSS_GAMMA = 2.0
    sg.LOSS_WEIGHT_CLS = 1.0
    sg.LOSS_WEIGHT_BOX = 1.0
    sg.LOSS_WEIGHT_CENTERNESS = 1.0
    # Training pairs: False = detection and mask losses on the key frame only, which is tracked
    # against the reference frame (release); True = on both frames, each tracked against the
    # other. The reference frame goes through the backbone anyway, so this doubles the
    # supervised frames for the cost of the heads (and a MASK.MAX_TRAIN_INSTANCES cap is reached
    # sooner: it caps the positives per batch).
    sg.SYMMETRIC_PAIRS = False
    # Inference: per-level candidates before NMS, score threshold, NMS IoU, detections per frame.
    sg.PRE_NMS_TOPK = 200
    sg.SCORE_THRESH_TEST = 0.03
    sg.NMS_THRESH_TEST = 0.5
    # NMS across classes, one candidate (its best class) per location, instead of per class
    # (release): an object whose class scores are split gets one detection, not one per class.
    sg.NMS_CLASS_AGNOSTIC = False
    sg.DETECTIONS_PER_IMAGE = 10
    # MODEL.WEIGHTS a detectron2 FCOS checkpoint (e.g. trained on COCO with detectron2's
    # COCO-Detection/fcos_R_50_FPN_1x.py): its backbone, FPN and head towers initialise SG-Net
    # (sgnet.checkpoint), and cls_score row by row through this map: for each of the NUM_CLASSES
    # classes, the checkpoint's class (contiguous index; COCO's 0-79) it starts from, or -1 for
    # none (that row keeps its initialisation). Empty = cls_score keeps its initialisation.
    # Unused with any other checkpoint (SG-Net's own, an ImageNet backbone).
    sg.FCOS_CLASS_MAP = []

    sg.MASK = CN()
    # FPN levels whose regression-tower outputs form the basis maps.
    sg.MASK.BASIS_IN_FEATURES = ["p3", "p4", "p5"]
    # Hidden width of the basis branch (1x1 conv) and number of basis maps K.
    sg.MASK.BASIS_HIDDEN_DIM = 512
    sg.MASK.NUM_BASES = 32
    # Granularities g (a g x g grid of coefficient vectors per box) the head predicts, ascending.
    sg.MASK.GRANULARITIES = [2, 3, 4]
    # Box-area thresholds (in basis pixels) between consecutive granularities: area > 500 -> 3,
    # area > 1000 -> 4, else 2. Needs len(GRANULARITIES) - 1 entries.
    sg.MASK.GRANULARITY_AREAS = [500.0, 1000.0]
    # Granularity selection: False = per instance by its own box area (paper), True = one g per
    # image from the mean area of its positive boxes (release, kept for the ablation).
    sg.MASK.GRANULARITY_PER_IMAGE = False
    # At inference, masks are assembled on each detected box scaled by this factor about its
    # centre, so that a mask can cover what a slightly too tight box cuts off; the granularity is
    # still chosen from the unscaled box. 1.0 = on the box itself (paper, release). (Scaling the
    # boxes in training too did worse on the toy task: video AP 63.9 vs 67.2.)
    sg.MASK.TEST_BOX_EXPANSION = 1.0
    # Weight of the mask loss.
    sg.MASK.LOSS_WEIGHT = 1.0
    # At most this many positives per batch get a mask loss (a random subset, as YOLACT-style
    # heads do, bounding memory on large objects). 0 = every positive (release: no cap; memory
    # grows with the positives' box areas, one K-vector per basis pixel of each box).
    sg.MASK.MAX_TRAIN_INSTANCES = 0
    # Mask-loss normalisation. True (release): instance weights (score x IoU) normalised to mean 1
    # within each image, and the images' losses averaged over all the batch's images (one without
    # a supervised instance adds 0). False: weights to mean 1 over the whole batch, and the losses
    # averaged over the images that have supervised instances.
    sg.MASK.WEIGHTS_PER_IMAGE = True
    # Mask targets at the basis stride: True = bilinear downsampling then > 0.5 (release,
    # binary); False = the average of each stride x stride block (soft, in [0, 1]).
    sg.MASK.BINARY_TARGETS = True
    # Mask probability threshold at inference.
    sg.MASK.THRESHOLD = 0.5

    sg.TRACK = CN()
    # FPN levels of the track tower, its depth, and the embedding width D.
    sg.TRACK.IN_FEATURES = ["p3", "p4", "p5"]
    sg.TRACK.NUM_CONVS = 2
    sg.TRACK.EMBED_DIM = 512
    # Reference boxes are jittered by up to this fraction of their size (centre and size).
    sg.TRACK.BOX_JITTER = 0.05
    # Weight of the matching cross-entropy.
    sg.TRACK.LOSS_WEIGHT = 1.0
    # The matching cross-entropy averaged over each key image's positives, then over all the
    # batch's key images (True, release: an image without positives adds 0), or over all positives
    # of the batch at once (False: images with more positives weigh more).
    sg.TRACK.LOSS_PER_IMAGE = True


def _add_tracker_config(cfg):
    cfg.MODEL.SGNET.TRACKER = CN()
    tr = cfg.MODEL.SGNET.TRACKER
    # Association score = log_softmax(embedding logits) + SCORE_WEIGHT*log(det score)
    #   + IOU_WEIGHT*IoU(box, track box) + LABEL_WEIGHT*[same label].
    tr.SCORE_WEIGHT = 1.0
    tr.IOU_WEIGHT = 2.0
    tr.LABEL_WEIGHT = 10.0
    # The label a track is compared with: False = the label of the detection that started it,
    # kept for the whole video (release); True = the label of its latest matched detection.
    tr.UPDATE_LABEL = False
    # Several detections claiming one track: "drop" the weaker ones (release) or start "new" tracks.
    tr.DUPLICATE_POLICY = "drop"
    # Frames a track may go without a detection before it is forgotten (0: never, the release's
    # rule). Bounds memory and association cost on long videos; YouTube-VIS validation videos
    # (<= 36 frames) are unaffected.
    tr.MAX_AGE = 300


def _add_test_config(cfg):
    # With CLASSES_PER_TRACK 1, a video track's label: "vote" = its most frequent frame label
    # (release), "score_sum" = the label with the highest summed frame score. Either way a tie goes
    # to the lowest class index, as the release's np.bincount(labels).argmax(). Its score is the
    # mean of its frame scores.
    cfg.TEST.TRACK_LABEL_RULE = "vote"
    # Entries per track in the results: 1 (release) = one, labelled by TRACK_LABEL_RULE; K > 1 =
    # one for each of the track's K classes with the highest mean class score m_c over its
    # frames, scored m_c^2 / max(m) (TRACK_LABEL_RULE unused; see VideoTrackAccumulator). A hedge
    # for uncertain classes, as query-based VIS methods output their top classes per video.
    # Needs MODEL.SGNET.NMS_CLASS_AGNOSTIC (one detection per location, not one per class).
    cfg.TEST.CLASSES_PER_TRACK = 1
