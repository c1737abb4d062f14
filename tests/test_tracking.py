"""Online association: hand-computed scores for swaps, new objects and duplicate claims."""
import math

import pytest
import torch

from sgnet.tracking import OnlineTracker, TrackMemory, VideoTrackAccumulator


LEFT = [0.0, 0.0, 10.0, 10.0]
RIGHT = [20.0, 0.0, 30.0, 10.0]


def tracker(policy="drop", max_age=0, update_label=False):
    return OnlineTracker(
        score_weight=1.0,
        iou_weight=2.0,
        label_weight=10.0,
        update_label=update_label,
        duplicate_policy=policy,
        max_age=max_age,
    )


def start_two_tracks(t):
    """Frame 0: object A (embedding e0) on the left, object B (e1) on the right, both label 0."""
    memory = TrackMemory()
    ids = t.update(memory, 5 * torch.eye(2), torch.tensor([LEFT, RIGHT]), torch.tensor([0.9, 0.8]), torch.tensor([0, 0]))
    assert ids.tolist() == [0, 1]
    return memory


def test_association_score_formula():
    t = tracker()
    memory = start_two_tracks(t)
    scores = t.association_scores(memory, torch.tensor([[5.0, 0.0]]), torch.tensor([LEFT]), torch.tensor([0.5]), torch.tensor([0]))
    # logits [0 (new), 25, 0]; log_softmax; + log(0.5); IoU with A = 1 -> +2; same label -> +10
    # for both tracks, and +10 (label term 1) with IoU 0 for "new".
    log_norm = math.log(1 + math.exp(25) + 1)
    expected = torch.tensor([0 - log_norm + 10, 25 - log_norm + 2 + 10, 0 - log_norm + 10]) + math.log(0.5)
    assert torch.allclose(scores[0], expected, atol=1e-4)


def test_swap_follows_embeddings_over_box_overlap():
    """A and B cross: A now on the right, B on the left. Embeddings outweigh the IoU term."""
    t = tracker()
    memory = start_two_tracks(t)
    ids = t.update(memory, 5 * torch.eye(2), torch.tensor([RIGHT, LEFT]), torch.tensor([0.9, 0.8]), torch.tensor([0, 0]))
    assert ids.tolist() == [0, 1]
    # The memory moved with them.
    assert memory.boxes.tolist() == [RIGHT, LEFT]


@pytest.mark.parametrize("update_label, track_label", [(False, 0), (True, 1)])
def test_matched_track_keeps_its_first_label_unless_update_label(update_label, track_label):
    """Frame 1: A's detection (same embedding and box) comes with label 1; the embedding term
    (25 vs 0 for "new") outweighs the label term (10 for "new", 0 for A), so it still matches A.
    Frame 2: a label-1 detection at A gets the label term from A only if A took label 1."""
    t = tracker(update_label=update_label)
    memory = start_two_tracks(t)
    relabelled = (5 * torch.eye(2)[:1], torch.tensor([LEFT]), torch.tensor([0.9]), torch.tensor([1]))
    assert t.update(memory, *relabelled).tolist() == [0]
    assert memory.labels.tolist() == [track_label, 0]
    assert memory.embeddings.tolist() == [[5.0, 0.0], [0.0, 5.0]] and memory.boxes.tolist() == [LEFT, RIGHT]
    scores = t.association_scores(memory, *relabelled)
    log_norm = math.log(1 + math.exp(25) + 1)
    label_term = 10.0 if track_label == 1 else 0.0
    assert scores[0, 1].item() == pytest.approx(25 - log_norm + math.log(0.9) + 2 + label_term, abs=1e-4)


def test_new_object_with_an_unseen_embedding_and_label_starts_a_track():
    t = tracker()
    memory = start_two_tracks(t)
    ids = t.update(
        memory,
        torch.tensor([[5.0, 0.0], [0.0, 0.0]]),
        torch.tensor([LEFT, [40.0, 40.0, 50.0, 50.0]]),
        torch.tensor([0.9, 0.7]),
        torch.tensor([0, 1]),
    )
    assert ids.tolist() == [0, 2]
    assert len(memory) == 3 and memory.labels.tolist() == [0, 0, 1]


@pytest.mark.parametrize("policy, expected", [("drop", [0, -1]), ("new", [0, 2])])
def test_duplicate_claim_goes_to_the_best_score(policy, expected):
    """Two detections both prefer track A; the one with the higher combined score (higher
    detection score, same everything else) takes it."""
    t = tracker(policy)
    memory = start_two_tracks(t)
    ids = t.update(
        memory,
        torch.tensor([[5.0, 0.0], [5.0, 0.0]]),
        torch.tensor([LEFT, LEFT]),
        torch.tensor([0.9, 0.4]),
        torch.tensor([0, 0]),
    )
    assert ids.tolist() == expected
    assert len(memory) == (3 if policy == "new" else 2)


def test_fresh_memory_means_fresh_ids_and_association_is_deterministic():
    t = tracker()
    runs = []
    for _ in range(2):
        memory = TrackMemory()
        frame_ids = []
        for shift in range(3):
            boxes = torch.tensor([[shift, 0.0, shift + 10.0, 10.0], [30.0 - shift, 0.0, 40.0 - shift, 10.0]])
            frame_ids.append(t.update(memory, 5 * torch.eye(2), boxes, torch.tensor([0.9, 0.8]), torch.tensor([0, 1])).tolist())
        runs.append(frame_ids)
    assert runs[0] == runs[1] == [[0, 1]] * 3


def test_frame_without_detections_keeps_the_tracks():
    t = tracker()
    memory = start_two_tracks(t)
    ids = t.update(memory, torch.zeros(0, 2), torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert ids.tolist() == [] and len(memory) == 2


@pytest.mark.parametrize("max_age", [0, 2])
def test_tracks_without_detections_for_max_age_frames_are_forgotten(max_age):
    """Frame 0 starts A (left) and B (right); frames 1-2 see only A. With MAX_AGE 2, B is gone after
    its second empty frame, and an object on the right in frame 3 is a new track with a new id;
    with MAX_AGE 0 (release) it is B again."""
    t = tracker(max_age=max_age)
    memory = start_two_tracks(t)
    only_a = (5 * torch.eye(2)[:1], torch.tensor([LEFT]), torch.tensor([0.9]), torch.tensor([0]))
    assert t.update(memory, *only_a).tolist() == [0]
    assert len(memory) == 2  # B missed one frame
    assert t.update(memory, *only_a).tolist() == [0]
    assert memory.ids.tolist() == ([0] if max_age else [0, 1]) and memory.frame == 3
    ids = t.update(memory, 5 * torch.eye(2), torch.tensor([LEFT, RIGHT]), torch.tensor([0.9, 0.8]), torch.tensor([0, 0]))
    assert ids.tolist() == ([0, 2] if max_age else [0, 1])
    assert memory.ids.tolist() == ids.tolist() and memory.last_seen.tolist() == [3, 3]
    # Frames without any detection age the tracks too.
    empty = (torch.zeros(0, 2), torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    t.update(memory, *empty)
    t.update(memory, *empty)
    assert len(memory) == (0 if max_age else 2)
    # Ids are never reused: after every track expired, the next object gets the next id.
    assert t.update(memory, *only_a).tolist() == ([3] if max_age else [0])


def test_expired_tracks_and_duplicate_policy_new():
    """Two detections claiming one surviving track under "new": the loser starts a track whose id
    follows every id given so far, expired ones included."""
    t = tracker(policy="new", max_age=1)
    memory = start_two_tracks(t)
    only_a = (5 * torch.eye(2)[:1], torch.tensor([LEFT]), torch.tensor([0.9]), torch.tensor([0]))
    assert t.update(memory, *only_a).tolist() == [0]
    assert memory.ids.tolist() == [0]  # B expired after one frame without a detection
    claims = t.update(memory, 5 * torch.eye(2)[[0, 0]], torch.tensor([LEFT, LEFT]), torch.tensor([0.9, 0.8]), torch.tensor([0, 0]))
    assert claims.tolist() == [0, 2] and memory.ids.tolist() == [0, 2]


def test_negative_max_age_is_refused():
    with pytest.raises(ValueError, match="MAX_AGE"):
        tracker(max_age=-1)


def one_hot_scores(score: float, label: int, num_classes: int = 3) -> torch.Tensor:
    """(1, C) class scores of one detection with ``score`` for ``label`` and 0 elsewhere."""
    return torch.nn.functional.one_hot(torch.tensor([label]), num_classes) * score


def test_video_accumulator_scores_labels_and_absent_frames():
    accumulator = VideoTrackAccumulator(num_frames=3, image_size=(2, 2), num_classes=3, label_rule="score_sum")
    mask = torch.ones(1, 2, 2, dtype=torch.bool)
    accumulator.add(0, torch.tensor([0]), one_hot_scores(0.9, 1), torch.tensor([1]), mask)
    accumulator.add(1, torch.tensor([0]), one_hot_scores(0.3, 2), torch.tensor([2]), mask)
    accumulator.add(2, torch.tensor([0]), one_hot_scores(0.4, 2), torch.tensor([2]), mask)
    accumulator.add(2, torch.tensor([-1]), one_hot_scores(0.99, 0), torch.tensor([0]), mask)  # dropped
    result = accumulator.result()
    assert result["pred_scores"] == pytest.approx([(0.9 + 0.3 + 0.4) / 3])
    assert result["pred_labels"] == [1]  # 0.9 for label 1 beats 0.7 for label 2
    # A detection's score is its own label's, even where another class scores higher (per-class
    # NMS keeps one detection per class at a location).
    per_class = VideoTrackAccumulator(num_frames=3, image_size=(2, 2), num_classes=3)
    per_class.add(0, torch.tensor([5]), torch.tensor([[0.2, 0.1, 0.7]]), torch.tensor([1]), mask)
    assert per_class.result()["pred_scores"] == pytest.approx([0.1])
    assert per_class.result()["pred_labels"] == [1]
    sparse = VideoTrackAccumulator(num_frames=3, image_size=(2, 2), num_classes=3)
    sparse.add(1, torch.tensor([4]), one_hot_scores(0.5, 0), torch.tensor([0]), mask)
    assert [m is None for m in sparse.result()["pred_masks"][0]] == [True, False, True]


@pytest.mark.parametrize(
    "frames, rule, label",
    [
        # Frame labels [0, 0, 2], label 2 with the higher summed score (0.9 vs 0.2 + 0.3).
        ([(0.2, 0), (0.3, 0), (0.9, 2)], "vote", 0),
        ([(0.2, 0), (0.3, 0), (0.9, 2)], "score_sum", 2),
        # A tied vote goes to the lowest class index, whatever the scores and the frame order.
        ([(0.9, 2), (0.1, 1)], "vote", 1),
        ([(0.1, 1), (0.9, 2)], "vote", 1),
        # A tied score sum too.
        ([(0.5, 2), (0.5, 1)], "score_sum", 1),
    ],
)
def test_track_label_rules(frames, rule, label):
    accumulator = VideoTrackAccumulator(num_frames=len(frames), image_size=(2, 2), num_classes=3, label_rule=rule)
    mask = torch.ones(1, 2, 2, dtype=torch.bool)
    for frame, (score, frame_label) in enumerate(frames):
        accumulator.add(frame, torch.tensor([0]), one_hot_scores(score, frame_label), torch.tensor([frame_label]), mask)
    result = accumulator.result()
    assert result["pred_labels"] == [label]
    assert result["pred_scores"] == pytest.approx([sum(score for score, _ in frames) / len(frames)])


def test_accumulator_default_rule_is_the_release_vote():
    accumulator = VideoTrackAccumulator(num_frames=3, image_size=(2, 2), num_classes=3)
    mask = torch.ones(1, 2, 2, dtype=torch.bool)
    for frame, (score, label) in enumerate([(0.2, 0), (0.3, 0), (0.9, 2)]):
        accumulator.add(frame, torch.tensor([0]), one_hot_scores(score, label), torch.tensor([label]), mask)
    assert accumulator.result()["pred_labels"] == [0]


def test_without_the_label_term_update_label_changes_nothing():
    """Why the toy config (LABEL_WEIGHT 0) leaves UPDATE_LABEL at its default: the stored label is
    read only by the label term. A relabelled object and a close call decided by labels alone
    give the same ids and scores either way."""
    runs = []
    for update_label in (False, True):
        t = OnlineTracker(
            score_weight=1.0, iou_weight=2.0, label_weight=0.0, update_label=update_label, duplicate_policy="drop", max_age=0
        )
        memory = TrackMemory()
        embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        ids = [t.update(memory, embeddings, torch.tensor([LEFT, RIGHT]), torch.tensor([0.9, 0.8]), torch.tensor([0, 1]))]
        for labels in ([1, 0], [2, 2], [0, 1]):
            ids.append(t.update(memory, embeddings, torch.tensor([LEFT, RIGHT]), torch.tensor([0.9, 0.8]), torch.tensor(labels)))
        scores = t.association_scores(memory, embeddings, torch.tensor([LEFT, RIGHT]), torch.tensor([0.9, 0.8]), torch.tensor([1, 0]))
        runs.append(([x.tolist() for x in ids], scores))
    assert runs[0][0] == runs[1][0] == [[0, 1]] * 4
    assert torch.equal(runs[0][1], runs[1][1])


def test_video_accumulator_reports_each_track_under_its_top_classes():
    accumulator = VideoTrackAccumulator(num_frames=2, image_size=(2, 2), num_classes=3, classes_per_track=2)
    masks = torch.tensor([[[True, False], [False, False]], [[False, False], [False, True]]])
    # Track 7: class scores (0.2, 0.5, 0.1) then (0.4, 0.3, 0.0); track 3 only in frame 1.
    accumulator.add(0, torch.tensor([7]), torch.tensor([[0.2, 0.5, 0.1]]), torch.tensor([1]), masks[:1])
    accumulator.add(
        1, torch.tensor([7, 3]), torch.tensor([[0.4, 0.3, 0.0], [0.05, 0.0, 0.6]]), torch.tensor([0, 2]), masks
    )
    result = accumulator.result()
    # Tracks in id order, each under its 2 best mean class scores m: track 3 (frame 1 only), m =
    # (0.05, 0, 0.6), then 7, m = (0.3, 0.4, 0.05); scored m_c^2 / max m.
    assert result["pred_labels"] == [2, 0, 1, 0]
    assert result["pred_scores"] == pytest.approx([0.6, 0.05**2 / 0.6, 0.4, 0.3**2 / 0.4])
    track_3, track_7 = result["pred_masks"][0], result["pred_masks"][2]
    assert result["pred_masks"][1] is track_3 and result["pred_masks"][3] is track_7
    assert track_3[0] is None and torch.equal(track_3[1], masks[1])
    assert torch.equal(track_7[0], masks[0]) and torch.equal(track_7[1], masks[0])
    with pytest.raises(ValueError, match="CLASSES_PER_TRACK"):
        VideoTrackAccumulator(num_frames=2, image_size=(2, 2), num_classes=3, classes_per_track=4)
