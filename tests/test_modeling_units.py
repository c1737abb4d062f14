"""Hand-computable checks of SG-Net's parts: targets, granularity, mask assembly, embeddings."""
import pytest
import torch
from detectron2.modeling import build_backbone, build_model
from detectron2.structures import Boxes, Instances
from torch.nn import functional as F

from sgnet.modeling.assignment import fcos_matched_indices
from sgnet.modeling.layers import gather_conv3x3
from sgnet.modeling.losses import centerness_targets
from sgnet.modeling.mask_head import BoxCrops, SpatialGranularityMaskHead, grid_bands
from sgnet.modeling.mask_paste import paste_masks
from sgnet.modeling.track_head import CenterTrackHead
from sgnet.tracking import TrackMemory

from model_fixtures import tiny_cfg, two_object_scene


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(tiny_cfg()).eval()


def assign(model, boxes, image_size=(256, 256)):
    """Run SG-Net's target assignment on one image with the given GT boxes."""
    features = [torch.zeros(1, 1, image_size[0] // s, image_size[1] // s) for s in (8, 16, 32, 64, 128)]
    anchors = model.anchor_generator(features)
    gt = Instances(image_size, gt_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32)))
    gt.gt_classes = torch.arange(len(boxes))
    from detectron2.utils.events import EventStorage

    with EventStorage():
        positives, labels = model._assign_targets(anchors, [gt], [f.shape[-1] for f in features])
    return positives, labels


def test_fcos_assignment_equals_detectron2s_on_random_scenes(model):
    # detectron2's FCOS.label_anchors(anchors, gt_instances) has the same signature in v0.6 and on
    # main (its matching underneath was renamed and reshaped). With gt_classes = 0..M-1 and
    # num_classes >= M, its labels are the matched GT index (num_classes for background).
    from detectron2.modeling.meta_arch.fcos import FCOS

    generator = torch.Generator().manual_seed(0)
    image_size = (320, 480)
    features = [torch.zeros(1, 1, image_size[0] // s, image_size[1] // s) for s in (8, 16, 32, 64, 128)]
    anchors = model.anchor_generator(features)
    num_gt = 40
    reference = FCOS(
        backbone=model.backbone, head=model.head, head_in_features=model.head_in_features,
        num_classes=num_gt, center_sampling_radius=model.center_sampling_radius,
        pixel_mean=[0.0, 0.0, 0.0], pixel_std=[1.0, 1.0, 1.0],
    )
    total_positives = 0
    for _ in range(20):
        corners = torch.rand(num_gt, 2, 2, generator=generator) * torch.tensor([image_size[1], image_size[0]])
        boxes = torch.cat([corners.amin(dim=1), corners.amax(dim=1)], dim=1)
        boxes[:5] = boxes[5:10]  # equal areas: the tie rule must agree too
        gt = Instances(image_size, gt_boxes=Boxes(boxes), gt_classes=torch.arange(num_gt))
        labels, _ = reference.label_anchors(anchors, [gt])
        expected = torch.where(labels[0] == num_gt, -1, labels[0])
        matched = fcos_matched_indices(anchors, boxes, model.center_sampling_radius)
        assert torch.equal(matched, expected)
        total_positives += int((matched >= 0).sum())
    assert total_positives > 1000  # the scenes do exercise the rule
    empty = fcos_matched_indices(anchors, torch.zeros(0, 4), 1.5)
    assert empty.shape == (sum(len(a) for a in anchors),) and bool((empty == -1).all())


def test_fcos_targets_small_box_takes_the_3x3_centre_region_of_p3(model):
    # Box centre (20, 20); P3 points sit at 4 + 8k. Centre sampling radius 1.5 * 8 = 12 keeps
    # x, y in {12, 20, 28}: 9 points, all inside the box, max distance <= 28 < 64 -> P3 only.
    positives, labels = assign(model, [[0, 0, 40, 40]])
    assert positives.level.tolist() == [0] * 9
    assert sorted(zip(positives.ys.tolist(), positives.xs.tolist())) == [(y, x) for y in (1, 2, 3) for x in (1, 2, 3)]
    assert (labels != model.num_classes).sum() == 9


def test_fcos_targets_large_box_goes_to_its_size_range_and_overlaps_go_to_the_smaller_box(model):
    # Box 200 x 150, centre (140, 175). P4 points (8 + 16k) within 1.5 * 16 = 24 px of the
    # centre: x in {120, 136, 152}, y in {160, 176, 192}; max distance 100..120, in (64, 128).
    # P5 points (16 + 32k) within 48 px: x in {112, 144, 176}, y in {144, 176, 208}; only x = 176
    # has max distance (l = 136) in (128, 256); x = 112 reaches exactly 128 (bounds are strict).
    positives, _ = assign(model, [[40, 100, 240, 250]])
    p4 = positives.level == 1
    p5 = positives.level == 2
    assert int(p4.sum()) + int(p5.sum()) == len(positives.level)
    assert sorted(zip(positives.ys[p4].tolist(), positives.xs[p4].tolist())) == [(y, x) for y in (9, 10, 11) for x in (7, 8, 9)]
    assert sorted(zip(positives.ys[p5].tolist(), positives.xs[p5].tolist())) == [(4, 5), (5, 5), (6, 5)]
    # Two concentric boxes centred at (24, 24): the P3 points within 12 px are x, y in {20, 28};
    # both boxes contain them with max distance < 64, so the smaller box (index 1) takes all four.
    positives, labels = assign(model, [[0, 0, 48, 48], [8, 8, 40, 40]])
    assert positives.level.tolist() == [0] * 4
    assert positives.gt.tolist() == [1] * 4
    assert sorted(labels[labels != model.num_classes].tolist()) == [1] * 4


def test_fcos_targets_for_an_image_without_objects(model):
    positives, labels = assign(model, torch.zeros(0, 4).tolist())
    assert len(positives.image) == 0
    assert (labels == model.num_classes).all()


def test_centerness_targets():
    distances = torch.tensor([[2.0, 4.0, 8.0, 4.0], [5.0, 5.0, 5.0, 5.0], [1.0, 9.0, 1.0, 1.0]])
    # sqrt(2/8 * 4/4) = 0.5; centre = 1; sqrt(1 * 1/9) = 1/3
    assert torch.allclose(centerness_targets(distances), torch.tensor([0.5, 1.0, 1 / 3]))


def make_mask_head(per_image=False, num_bases=3, test_box_expansion=1.0):
    return SpatialGranularityMaskHead(
        in_channels=4,
        num_basis_levels=3,
        hidden_dim=8,
        num_bases=num_bases,
        granularities=[2, 3, 4],
        granularity_areas=[500.0, 1000.0],
        granularity_per_image=per_image,
        test_box_expansion=test_box_expansion,
    )


def test_granularity_selection_by_box_area():
    head = make_mask_head()
    areas = torch.tensor([100.0, 500.0, 500.1, 1000.0, 1000.1, 5000.0])
    assert head.select_granularity(areas, torch.zeros(6, dtype=torch.long)).tolist() == [2, 2, 3, 3, 4, 4]
    # Release mode: one g per image from its mean area (image 0: (100 + 3000) / 2 = 1550 -> 4).
    per_image = make_mask_head(per_image=True)
    areas = torch.tensor([100.0, 3000.0, 600.0])
    assert per_image.select_granularity(areas, torch.tensor([0, 0, 1])).tolist() == [4, 4, 3]


def test_grid_bands_split_boxes_evenly():
    # A box [0, 4) with g = 2 along one axis: pixel centres 0.5, 1.5 in band 0, 2.5, 3.5 in band 1;
    # past the far edge, the last band (the clamp); before the box, the first.
    bands = grid_bands(torch.arange(-1, 6)[None], torch.tensor([0.0]), torch.tensor([4.0]), torch.tensor([2]))
    assert bands.tolist() == [[0, 0, 0, 1, 1, 1, 1]]
    # g = 3 over [1, 7): two pixels a band.
    bands = grid_bands(torch.arange(1, 7)[None], torch.tensor([1.0]), torch.tensor([7.0]), torch.tensor([3]))
    assert bands.tolist() == [[0, 0, 1, 1, 2, 2]]


def slow_assembly(bases, boxes, image_idx, coefficients, granularities, num_bases):
    """Reference: loop over instances, cells and pixels; a pixel belongs to cell (i, j) when its
    centre lies in the box's i-th row / j-th column band."""
    offsets = {2: 0, 3: 4 * num_bases, 4: 13 * num_bases}
    out = torch.zeros(len(boxes), *bases.shape[-2:])
    for n, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        g = int(granularities[n])
        for i in range(g):
            for j in range(g):
                first = offsets[g] + (i * g + j) * num_bases
                coef = coefficients[n, first : first + num_bases]
                for y in range(bases.shape[-2]):
                    for x in range(bases.shape[-1]):
                        cy, cx = y + 0.5, x + 0.5
                        inside = x0 <= cx < x1 and y0 <= cy < y1
                        if inside and min(int((cy - y0) / (y1 - y0) * g), g - 1) == i and min(int((cx - x0) / (x1 - x0) * g), g - 1) == j:
                            out[n, y, x] = float(bases[image_idx[n], :, y, x] @ coef)
    return out


@pytest.mark.parametrize("chunk_size", [1, 2, 32])
def test_mask_assembly_matches_a_slow_per_cell_loop(chunk_size):
    """Training's assembly (coarse logits on box crops, sampled per cell) equals combining the
    x4-upsampled bases with each pixel's cell coefficients, pixel by pixel, in chunks of any size."""
    torch.manual_seed(0)
    head = make_mask_head()
    coarse_bases = torch.randn(2, 3, 5, 6)
    bases = F.interpolate(coarse_bases, scale_factor=4, mode="bilinear", align_corners=False)  # (2, 3, 20, 24)
    # areas (basis px): 6.5 * 5.5 ~ 36 -> g 2; 22 x 26 = 572 -> g 3; 24 x 50 clipped box -> g 4
    boxes = torch.tensor([[1.2, 2.5, 7.7, 8.0], [0.0, 0.0, 22.0, 26.0], [-3.0, 1.0, 21.0, 51.0], [5.0, 5.0, 5.2, 9.0]])
    image_idx = torch.tensor([0, 1, 1, 0])
    coefficients = torch.randn(4, 3 * (4 + 9 + 16))
    pixels, logits = head.assemble(coarse_bases, image_idx, boxes, coefficients, chunk_size=chunk_size)
    assembled = torch.zeros(4, 20, 24)
    assembled[pixels.instance, pixels.ys, pixels.xs] = logits
    granularities = head.select_granularity(
        (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), image_idx
    )
    assert granularities.tolist() == [2, 3, 4, 2]
    reference = slow_assembly(bases, boxes, image_idx, coefficients, granularities, 3)
    assert torch.allclose(assembled, reference, atol=1e-5)
    # Each pixel once, and exactly the pixels whose centres are inside the clipped boxes.
    inside = torch.zeros(4, 20, 24, dtype=torch.long)
    inside.index_put_((pixels.instance, pixels.ys, pixels.xs), torch.ones_like(pixels.ys), accumulate=True)
    assert inside[0].sum() == 6 * 7 and inside[1].sum() == 20 * 22 and inside[2].sum() == 19 * 21
    assert inside.max() == 1 and inside[3].sum() == 0
    # Every cell really uses its own coefficients: the four quadrants of instance 0 differ.
    assert len({round(float(v), 4) for v in assembled[0][assembled[0] != 0]}) > 4


def test_assembly_of_nothing_stays_in_the_graph():
    """No instance, or only boxes that cover no pixel: no pixel, and the (empty) logits still
    depend on the coefficients and bases, so that backward reaches the whole head."""
    head = make_mask_head()
    coarse_bases = torch.randn(1, 3, 5, 6, requires_grad=True)
    for boxes in (torch.zeros(0, 4), torch.tensor([[3.0, 3.0, 3.0, 9.0], [2.6, 2.6, 2.9, 2.9]])):
        coefficients = torch.randn(len(boxes), 3 * 29, requires_grad=True)
        pixels, logits = head.assemble(coarse_bases, torch.zeros(len(boxes), dtype=torch.long), boxes, coefficients)
        assert len(pixels.instance) == len(logits) == 0
        logits.sum().backward()
        assert coarse_bases.grad is not None and coefficients.grad is not None
        coarse_bases.grad = None


def test_test_mask_boxes_scale_about_centres():
    head = make_mask_head(test_box_expansion=1.5)
    boxes = torch.tensor([[2.0, 1.0, 22.0, 23.0], [4.0, 4.0, 8.0, 6.0]])
    scaled = torch.tensor([[-3.0, -4.5, 27.0, 28.5], [3.0, 3.5, 9.0, 6.5]])
    assert torch.equal(head.test_mask_boxes(boxes), scaled)
    assert make_mask_head().test_mask_boxes(boxes) is boxes
    with pytest.raises(ValueError, match="TEST_BOX_EXPANSION"):
        make_mask_head(test_box_expansion=0.9)


def test_degenerate_box_covers_no_pixel():
    crops = BoxCrops.of(torch.tensor([[3.0, 3.0, 3.0, 9.0], [2.6, 2.6, 2.9, 2.9], [1.0, 1.0, 3.0, 2.0]]), (10, 10))
    assert (crops.heights * crops.widths).tolist() == [0, 0, 2]


def test_sparse_coefficients_equal_the_dense_conv():
    torch.manual_seed(0)
    features = [torch.randn(2, 5, 7, 9), torch.randn(2, 5, 4, 5)]
    weight, bias = torch.randn(6, 5, 3, 3), torch.randn(6)
    dense = [F.conv2d(f, weight, bias, padding=1) for f in features]
    batch_idx = torch.tensor([0, 1, 1, 0, 1, 0, 1])
    level = torch.tensor([0, 0, 0, 0, 0, 1, 1])
    ys = torch.tensor([0, 6, 3, 6, 0, 3, 1])
    xs = torch.tensor([0, 8, 4, 0, 8, 4, 0])  # corners and borders use the zero padding
    sparse = gather_conv3x3(features, weight, bias, batch_idx, level, ys, xs)
    expected = torch.stack([dense[l][b, :, y, x] for b, l, y, x in zip(batch_idx, level, ys, xs)])
    assert torch.allclose(sparse, expected, atol=1e-5)


def test_centre_embedding_lookup_reads_the_dense_map_at_floor_centre_over_stride():
    torch.manual_seed(0)
    head = CenterTrackHead(in_channels=4, num_levels=3, num_convs=1, norm="", embed_dim=6, stride=8)
    fused = torch.randn(2, 12, 5, 7)
    dense = head.embedding_map(fused)
    centres = torch.tensor([[17.0, 9.0], [7.9, 39.99], [500.0, -3.0]])
    image_idx = torch.tensor([0, 1, 1])
    embeddings = head.embeddings_at(fused, image_idx, centres)
    # (17, 9) -> cell x 2, y 1; (7.9, 39.99) -> x 0, y 4; out of range -> clamped to x 6, y 0
    expected = torch.stack([dense[0, :, 1, 2], dense[1, :, 4, 0], dense[1, :, 0, 6]])
    assert torch.allclose(embeddings, expected, atol=1e-5)


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_backbone_depths_build_with_p3_to_p7(depth):
    overrides = {"MODEL.RESNETS.DEPTH": depth}
    if depth >= 50:
        overrides.update({"MODEL.RESNETS.RES2_OUT_CHANNELS": 256, "MODEL.FPN.OUT_CHANNELS": 32})
    backbone = build_backbone(tiny_cfg(**overrides))
    shapes = backbone.output_shape()
    assert {k: v.stride for k, v in shapes.items()} == {"p3": 8, "p4": 16, "p5": 32, "p6": 64, "p7": 128}
    with torch.no_grad():
        outputs = backbone(torch.zeros(1, 3, 128, 128))
    assert outputs["p7"].shape[-2:] == (1, 1)


@pytest.mark.parametrize("width", [32, 64])
def test_basic_block_resnets_take_any_width(width):
    """R-18 at RES2_OUT_CHANNELS 32 (the toy config's; detectron2's builder refuses it) doubles
    the width per stage; at 64 it is detectron2's own R-18, parameter for parameter."""
    from detectron2.modeling.backbone.resnet import build_resnet_backbone
    from detectron2.layers import ShapeSpec
    from sgnet.modeling.backbone import build_resnet

    cfg = tiny_cfg(**{"MODEL.RESNETS.RES2_OUT_CHANNELS": width, "MODEL.RESNETS.STEM_OUT_CHANNELS": width})
    resnet = build_resnet(cfg, ShapeSpec(channels=3))
    shapes = resnet.output_shape()
    assert [shapes[f"res{i}"].channels for i in (3, 4, 5)] == [2 * width, 4 * width, 8 * width]
    assert [shapes[f"res{i}"].stride for i in (3, 4, 5)] == [8, 16, 32]
    assert sum(len(stage) for stage in resnet.stages) == 8  # 2 BasicBlocks per stage
    if width == 64:
        reference = build_resnet_backbone(cfg, ShapeSpec(channels=3))
        assert [p.shape for p in resnet.parameters()] == [p.shape for p in reference.parameters()]


def test_p6_is_computed_from_p5(model):
    # Changing the input only through P5's path must change P6 the way P5's conv says: check the
    # wiring directly, P6 = conv(P5), P7 = conv(relu(P6)).
    backbone = model.backbone
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, 128, 128))
        top = backbone.top_block
        assert torch.allclose(features["p6"], top.p6(features["p5"]), atol=1e-5)
        assert torch.allclose(features["p7"], top.p7(F.relu(features["p6"])), atol=1e-5)


@pytest.mark.parametrize("size", [(7, 9), (1, 1)])
def test_sampled_deformable_conv_equals_torchvision(size):
    from torchvision.ops import deform_conv2d

    from sgnet.modeling.layers import sampled_deform_conv3x3

    torch.manual_seed(0)
    features = torch.randn(2, 8, *size, requires_grad=True)
    # Offsets of several pixels: taps land between pixels and outside the map.
    offsets = (3 * torch.randn(2, 2 * 4 * 9, *size)).requires_grad_()
    weight = torch.randn(5, 8, 3, 3, requires_grad=True)
    bias = torch.randn(5, requires_grad=True)
    reference = deform_conv2d(features, offsets, weight, bias, padding=1)
    sampled = sampled_deform_conv3x3(features, offsets, weight, bias, padding=1)
    assert torch.allclose(sampled, reference, atol=1e-4)
    upstream = torch.randn_like(reference)
    grads_reference = torch.autograd.grad(reference, (features, offsets, weight, bias), upstream)
    grads_sampled = torch.autograd.grad(sampled, (features, offsets, weight, bias), upstream)
    for name, a, b in zip(("features", "offsets", "weight", "bias"), grads_sampled, grads_reference):
        assert torch.allclose(a, b, atol=1e-3, rtol=1e-3), name


def test_sampled_deformable_conv_samples_at_float32_positions_under_autocast():
    """Under bfloat16 autocast, sampling positions rounded to the features' dtype would be whole
    pixels apart past x = 128. A centre-tap-only kernel reads sin(0.7 x) at x + 0.37: the result
    must be float32's up to the output's bfloat16 rounding."""
    from sgnet.modeling.layers import sampled_deform_conv3x3

    width = 200
    features = torch.sin(0.7 * torch.arange(width, dtype=torch.float32)).expand(1, 1, 3, width).contiguous()
    offsets = torch.zeros(1, 18, 3, width)
    offsets[:, 1::2] = 0.37  # every tap's dx (the layout is (dy, dx) per tap)
    weight = torch.zeros(1, 1, 3, 3)
    weight[0, 0, 1, 1] = 1.0
    reference = sampled_deform_conv3x3(features, offsets, weight)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = sampled_deform_conv3x3(features.bfloat16(), offsets.bfloat16(), weight)
    assert (mixed.float() - reference).abs().max() < 0.02


def straightforward_masks(head, coarse_bases, boxes, coefficients, granularity, valid_size, output_size):
    """Reference for inference masks: bases upsampled x4, each pixel of the scaled boxes combined
    with its cell's coefficients, probabilities 0 outside them, the valid part resized to the
    output. Returns the resized probabilities."""
    bases = F.interpolate(coarse_bases, scale_factor=4, mode="bilinear", align_corners=False)[0]
    boxes = head.test_mask_boxes(boxes)
    height, width = bases.shape[-2:]
    centres_y = torch.arange(height)[:, None] + 0.5
    centres_x = torch.arange(width)[None, :] + 0.5
    offsets = {2: 0, 3: 4, 4: 13}
    probabilities = torch.zeros(len(boxes), height, width)
    for n, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        g = int(granularity[n])
        inside = (centres_y >= y0) & (centres_y < y1) & (centres_x >= x0) & (centres_x < x1)
        i = ((centres_y - y0) / (y1 - y0) * g).floor().long().clamp(0, g - 1).expand(height, width)
        j = ((centres_x - x0) / (x1 - x0) * g).floor().long().clamp(0, g - 1).expand(height, width)
        cells = coefficients[n].reshape(-1, head.num_bases)[offsets[g] + i * g + j]  # (H, W, K)
        logits = (cells * bases.permute(1, 2, 0)).sum(dim=-1)
        probabilities[n] = torch.where(inside, logits.sigmoid(), 0.0)
    valid = probabilities[:, None, : valid_size[0], : valid_size[1]]
    return F.interpolate(valid, size=output_size, mode="bilinear", align_corners=False)[:, 0]


def pasted_masks(head, coarse_bases, boxes, coefficients, granularity, valid_size, output_size, chunk_size,
                 paste_chunk_pixels=2**21):
    """Inference's masks: probabilities on the crops (``chunk_size`` None: the exported one-pass
    form, sizes as tensors as when traced), pasted onto the output."""
    if chunk_size is None:
        valid_size = [torch.tensor(size) for size in valid_size]
    probabilities, crops = head.mask_probabilities(coarse_bases, boxes, coefficients, granularity, valid_size, chunk_size)
    assert (probabilities >= 0).all() and not (probabilities * ~crops.inside(probabilities.shape[1:])).any()
    return paste_masks(probabilities, crops.regions(), [int(v) for v in valid_size], output_size, 0.5, paste_chunk_pixels)


@pytest.mark.parametrize(
    "output_size, test_box_expansion", [((44, 62), 1.0), ((37, 50), 1.0), ((90, 129), 1.0), ((37, 50), 1.2)]
)
def test_inference_masks_equal_the_straightforward_computation(output_size, test_box_expansion):
    """Box crops, coarse logits, grid sampling and the paste give the masks of upsampling the
    bases, combining every box pixel with its cell and resizing whole maps: at integer and
    fractional output scales, for boxes over the edges, in the padding and empty, in chunks of any
    size and in the exported one-pass form, on scaled boxes too."""
    torch.manual_seed(0)
    head = make_mask_head(num_bases=3, test_box_expansion=test_box_expansion)
    coarse_bases = torch.randn(1, 3, 6, 8)  # bases 24 x 32, of which 22 x 31 cover the input
    valid_size = (22, 31)
    boxes = torch.tensor(
        [
            [1.2, 2.5, 7.7, 8.0],  # small: g 2
            [0.0, 0.0, 22.0, 26.0],  # g 3
            [-3.0, 1.0, 21.0, 51.0],  # over the bottom edge: g 4
            [10.3, 4.1, 31.6, 21.9],  # to the right edge
            [5.0, 5.0, 5.2, 9.0],  # covers no pixel centre
            [2.0, 22.5, 9.0, 24.0],  # only in the padding below the input
            [0.4, 0.6, 2.6, 1.7],  # 2 x 1 pixels
        ]
    )
    granularity = head.box_granularity(boxes, torch.zeros(len(boxes), dtype=torch.long))
    assert set(granularity.tolist()) == {2, 3, 4}
    coefficients = 2 * torch.randn(len(boxes), 3 * (4 + 9 + 16))
    reference = straightforward_masks(head, coarse_bases, boxes, coefficients, granularity, valid_size, output_size)
    # Pixels within float rounding of the threshold may go either way.
    decided = (reference - 0.5).abs() > 1e-5
    results = [
        pasted_masks(head, coarse_bases, boxes, coefficients, granularity, valid_size, output_size, chunk_size, paste)
        for chunk_size, paste in ((1, 1), (3, 500), (1000, 10**9), (None, 2**21))
    ]
    for masks in results:
        assert masks.shape == (len(boxes), *output_size) and masks.dtype == torch.bool
        assert torch.equal(masks[decided], (reference > 0.5)[decided])
    masks = results[-1]
    assert masks[1:4].flatten(1).any(dim=1).all() and not masks[4:6].any()
    # Cells differ: within box 2, both masked and unmasked pixels.
    assert 0.1 < masks[2].float().mean() < 0.9
    for chunk_size in (8, None):
        none = pasted_masks(head, coarse_bases, boxes[:0], coefficients[:0], granularity[:0], valid_size, output_size, chunk_size)
        assert none.shape == (0, *output_size)
        # Only boxes that cover no pixel of the input: crops of no pixel, empty masks.
        empty = pasted_masks(head, coarse_bases, boxes[4:6], coefficients[4:6], granularity[4:6], valid_size, output_size, chunk_size)
        assert empty.shape == (2, *output_size) and not empty.any()


@pytest.mark.parametrize("traced", [False, True])
def test_frame_masks_equal_the_straightforward_computation(monkeypatch, traced):
    """``SGNet._masks`` and the paste's wiring (basis stride, valid part of the padded map,
    coarse bases of the frame): a frame's masks equal bases combined at every box pixel and the
    valid part resized to the frame's size, with an input that is padded and resized; in both
    formulations (``traced``: the exported one, through ``frame_step``)."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg()).eval()
    # Boxes of 4 strides, so that masks cover pixels.
    torch.nn.init.constant_(model.head.box_pred.bias, 2.0)
    model.test_score_thresh, model.test_nms_thresh, model.max_detections_per_image = 0.0, 1.0, 6
    calls = []
    masks_of = model._masks
    monkeypatch.setattr(model, "_masks", lambda *args: calls.append(args) or masks_of(*args))
    torch.manual_seed(0)
    image = torch.randint(0, 255, (3, 90, 125), dtype=torch.uint8)  # padded to 96 x 128
    with torch.no_grad():
        outputs = model.frame_step(image, (117, 163), traced=traced)
        masks = outputs.to_instances((117, 163), model.mask_threshold).pred_masks
        predictions, detections, image_idx, input_size, traced_call = calls[0]
        assert traced_call == traced
        coarse_bases = model.mask_head.coarse_bases([predictions["box_features"][i] for i in model.basis_levels])
        coefficients = model.mask_head.coefficients(
            predictions["aligned_features"], image_idx, detections.level, detections.ys, detections.xs
        )
        boxes = detections.boxes / model.basis_stride
        granularity = model.mask_head.box_granularity(boxes, image_idx)
        valid_size = (-(-90 // model.basis_stride), -(-125 // model.basis_stride))
        reference = straightforward_masks(
            model.mask_head, coarse_bases, boxes, coefficients, granularity, valid_size, (117, 163)
        )
    assert outputs.mask_map_size.tolist() == list(valid_size)
    decided = (reference - model.mask_threshold).abs() > 1e-5
    assert masks.shape == (6, 117, 163) and masks.any()
    assert torch.equal(masks[decided], (reference > model.mask_threshold)[decided])


def _one_level_candidates():
    """Two 2 x 2 class-score maps (C=2, one level) and a box decoder: location 0 scores
    (0.8, 0.6), location 1 (0.1, 0.7) with a box overlapping location 0's, location 3 (0.5, 0.05)
    with a box of its own; location 2 is below threshold."""
    probabilities = torch.tensor([[0.8, 0.1, 0.01, 0.5], [0.6, 0.7, 0.01, 0.05]])
    cls_logits = [torch.logit(probabilities).reshape(2, 2, 2)]
    centerness = [torch.full((1, 2, 2), 20.0)]  # sigmoid ~ 1: scores are the class scores
    boxes = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [30, 0, 40, 10]], dtype=torch.float32)
    return cls_logits, centerness, lambda level, locations: boxes[locations].clone()


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_detection_selection_per_class_or_class_agnostic(class_agnostic):
    from sgnet.modeling.postprocessing import select_detections

    cls_logits, centerness, decode = _one_level_candidates()
    detections = select_detections(
        cls_logits, centerness, decode, pre_nms_topk=4, score_thresh=0.3, nms_thresh=0.5, max_detections=10,
        image_size=(64, 64), class_agnostic=class_agnostic,
    )
    found = sorted(zip(detections.xs.tolist(), detections.ys.tolist(), detections.labels.tolist()))
    if class_agnostic:
        # One candidate per location (its best class); location 1's box is suppressed by
        # location 0's although their classes differ.
        assert found == [(0, 0, 0), (1, 1, 0)]
    else:
        # Location 0 is a candidate for both classes; in class 1, location 1 (0.7) suppresses
        # location 0 (0.6); location 3 is a candidate for class 0 only.
        assert found == [(0, 0, 0), (1, 0, 1), (1, 1, 0)]
    for x, y, row in zip(detections.xs.tolist(), detections.ys.tolist(), detections.class_scores):
        location = y * 2 + x
        expected = torch.sigmoid(cls_logits[0].flatten(1)[:, location]) * torch.sigmoid(torch.tensor(20.0))
        assert torch.allclose(row, expected)
    assert torch.allclose(detections.scores, detections.class_scores.gather(1, detections.labels[:, None])[:, 0])


def test_association_runs_in_float32_with_autocast_off(monkeypatch):
    """Under autocast the tracker still gets float32 embeddings and boxes, and its products run
    with autocast off (they decide track identities)."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg()).eval()
    seen = []
    update = model.tracker.update

    def spy(memory, embeddings, boxes, scores, labels):
        seen.append((torch.is_autocast_enabled("cpu"), embeddings.dtype, boxes.dtype, scores.dtype))
        return update(memory, embeddings, boxes, scores, labels)

    monkeypatch.setattr(model.tracker, "update", spy)
    frame = two_object_scene(0)[0]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
        model.inference_frame(frame, (128, 160), TrackMemory())
    assert seen == [(False, torch.float32, torch.float32, torch.float32)]


def test_nms_per_group_equals_torchvision_batched_nms():
    """The offset trick with the image's size as the bound keeps the same boxes as torchvision's
    batched NMS: overlapping boxes of different classes, at the image's edges, ties included."""
    from torchvision.ops import batched_nms

    from sgnet.modeling.postprocessing import nms_per_group

    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        corners = torch.rand(60, 2, generator=generator) * torch.tensor([120.0, 90.0])
        sizes = torch.rand(60, 2, generator=generator) * 60 + 1
        boxes = torch.cat([corners, corners + sizes], dim=1)
        boxes = torch.minimum(boxes, torch.tensor([120.0, 90.0, 120.0, 90.0]))  # clipped to a 90 x 120 image
        scores = (torch.rand(60, generator=generator) * 10).round() / 10  # ties
        labels = torch.randint(0, 4, (60,), generator=generator)
        kept = nms_per_group(boxes, scores, labels, 0.5, torch.tensor(120.0))
        assert sorted(kept.tolist()) == sorted(batched_nms(boxes, scores, labels, 0.5).tolist())
        assert (scores[kept][1:] <= scores[kept][:-1]).all()
        assert torch.equal(nms_per_group(boxes, scores, None, 0.5, torch.tensor(120.0)), batched_nms(boxes, scores, torch.zeros_like(labels), 0.5))
        # At threshold 1 (NMS off) every box is kept, identical (clipped) ones too, as torchvision keeps them.
        duplicated, duplicated_scores = torch.cat([boxes, boxes[:5]]), torch.cat([scores, scores[:5] - 0.01])
        off = nms_per_group(duplicated, duplicated_scores, None, 1.0, torch.tensor(120.0))
        assert sorted(off.tolist()) == sorted(batched_nms(duplicated, duplicated_scores, torch.zeros(65, dtype=torch.int64), 1.0).tolist())
        assert sorted(off.tolist()) == list(range(65)) and (duplicated_scores[off][1:] <= duplicated_scores[off][:-1]).all()


def _fcos_public_methods():
    """The public methods SG-Net inherits from detectron2's FCOS and DenseDetector (the installed
    detectron2's), with where each is defined."""
    from detectron2.modeling.meta_arch.dense_detector import DenseDetector
    from detectron2.modeling.meta_arch.fcos import FCOS

    return {
        name: owner
        for owner in (DenseDetector, FCOS)
        for name, value in vars(owner).items()
        if not name.startswith("_") and callable(value)
    }


# What SG-Net takes from FCOS as it is; forward is its own.
USED_FCOS_METHODS = {"preprocess_image", "forward"}


def test_inherited_fcos_methods_that_sgnet_replaces_refuse_naming_the_replacement(model):
    from detectron2.modeling.meta_arch.fcos import FCOS

    from sgnet.modeling import SGNet

    inherited = set(_fcos_public_methods())
    assert {"forward_training", "losses", "label_anchors", "forward_inference"} <= inherited
    # v0.6's match_anchors is refused on main too (where FCOS has _match_anchors instead).
    refused = (inherited - USED_FCOS_METHODS) | {"match_anchors"}
    for name in sorted(refused):
        assert getattr(SGNet, name) is not getattr(FCOS, name, None)
        with pytest.raises(NotImplementedError, match=f"^SGNet does not use FCOS.{name}; its "):
            getattr(model, name)(None, None)
    assert SGNet.preprocess_image is FCOS.preprocess_image


def test_state_dict_holds_exactly_the_submodules_parameters_and_buffers(model):
    """Checkpoint keys: the backbone's, the detection head's, the mask head's and the track
    head's under their attribute names (pixel mean / std and anchors are not saved)."""
    submodules = ("backbone", "head", "mask_head", "track_head")
    expected = {f"{name}.{key}" for name in submodules for key in getattr(model, name).state_dict()}
    assert set(model.state_dict()) == expected
    assert {name for name, _ in model.named_children()} == set(submodules) | {"anchor_generator"}
    assert not model.anchor_generator.state_dict()


def test_stage_timer_is_told_each_stage_of_a_frame_once_at_a_time(model):
    """The stages a frame's inference reports to ``stage_timer``: all of STAGES, in order of
    their first run, never nested (the benchmark sums each stage's times)."""
    from contextlib import contextmanager

    from sgnet.modeling.online import STAGES

    events = []

    @contextmanager
    def recording_timer(stage):
        events.append(("enter", stage))
        yield
        events.append(("exit", stage))

    model.stage_timer = recording_timer
    try:
        with torch.no_grad():
            model.inference_frame(two_object_scene(0)[0], (128, 160), TrackMemory())
    finally:
        del model.stage_timer  # back to the class's no-op default
    stages = [stage for _, stage in events[0::2]]
    assert events == [event for stage in stages for event in (("enter", stage), ("exit", stage))]
    assert tuple(dict.fromkeys(stages)) == STAGES
    # The masks' second part is their paste onto the frame, after the frame step.
    assert stages == [
        "backbone+FPN", "heads", "post-processing", "heads", "mask assembly", "heads", "mask assembly", "tracking"
    ]
