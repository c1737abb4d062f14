"""SGNetCheckpointer cannot lose work: saves are atomic, ``--resume`` finds the newest checkpoint
that loads (with or without ``last_checkpoint``), and a checkpoint of another model is refused
before the optimizer would fail on it. train_net's use of it: tests/test_apps.py."""
import hashlib
import os

import pytest
import torch
from torch import nn

from sgnet.checkpoint import CheckpointLoadError, SGNetCheckpointer
from sgnet.errors import InvalidInput


class Counter:
    """A checkpointable holding an iteration, like detectron2's trainer state."""

    def __init__(self, iteration=0):
        self.iteration = iteration

    def state_dict(self):
        return {"iteration": self.iteration}

    def load_state_dict(self, state):
        self.iteration = state["iteration"]


def make(folder, classes: int = 3):
    """A model whose head has ``classes`` rows, an AdamW over it, and a checkpointer of both."""
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, classes))
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 4)).sum().backward()
    optimizer.step()  # AdamW's state now has per-parameter moments
    counter = Counter()
    return model, SGNetCheckpointer(model, str(folder), optimizer=optimizer, counter=counter), counter


def save_at(checkpointer, counter, iteration: int, name: str):
    counter.iteration = iteration
    checkpointer.save(name, iteration=iteration)


def digests(folder) -> dict:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in sorted(os.listdir(folder))}


def test_resume_without_last_checkpoint_takes_the_newest(tmp_path):
    _, checkpointer, counter = make(tmp_path)
    save_at(checkpointer, counter, 1, "model_0000001")
    save_at(checkpointer, counter, 3, "model_0000003")
    (tmp_path / "last_checkpoint").unlink()  # a copied run folder
    before = digests(tmp_path)

    _, resumed, counter = make(tmp_path)
    assert [os.path.basename(f) for f in resumed.checkpoint_files()] == ["model_0000003.pth", "model_0000001.pth"]
    assert resumed.resume_or_load("", resume=True)["iteration"] == 3
    assert counter.iteration == 3
    assert digests(tmp_path) == before  # nothing rewritten


def test_model_final_and_the_tag_come_first(tmp_path):
    _, checkpointer, counter = make(tmp_path)
    for iteration, name in ((9, "model_final"), (5, "model_0000005"), (7, "model_0000007")):
        save_at(checkpointer, counter, iteration, name)
    # The tag names model_0000007 (saved last): it wins; without it model_final does.
    assert [os.path.basename(f) for f in checkpointer.checkpoint_files()] == ["model_0000007.pth", "model_final.pth", "model_0000005.pth"]
    (tmp_path / "last_checkpoint").unlink()
    assert [os.path.basename(f) for f in checkpointer.checkpoint_files()] == ["model_final.pth", "model_0000007.pth", "model_0000005.pth"]


@pytest.mark.parametrize("tagged", [True, False], ids=["tag-names-it", "no-tag"])
def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog, tagged):
    _, checkpointer, counter = make(tmp_path)
    save_at(checkpointer, counter, 1, "model_0000001")
    save_at(checkpointer, counter, 3, "model_0000003")
    newest = tmp_path / "model_0000003.pth"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    if not tagged:
        (tmp_path / "last_checkpoint").unlink()

    _, resumed, counter = make(tmp_path)
    assert resumed.resume_or_load("", resume=True)["iteration"] == 1
    assert counter.iteration == 1
    assert f"Skipping {newest}: {newest}: not a checkpoint torch or detectron2 can read" in caplog.text


def test_no_loadable_checkpoint_is_an_error_naming_the_folder(tmp_path):
    (tmp_path / "model_0000001.pth").write_bytes(b"")
    _, checkpointer, _ = make(tmp_path)
    with pytest.raises(CheckpointLoadError, match=f"{tmp_path}: none of its 1 checkpoints loads \\(model_0000001.pth\\)"):
        checkpointer.resume_or_load("", resume=True)


def test_a_save_killed_midway_leaves_the_previous_files_and_tag(tmp_path, monkeypatch):
    _, checkpointer, counter = make(tmp_path)
    save_at(checkpointer, counter, 1, "model_0000001")
    before = digests(tmp_path)
    real_save = torch.save

    def dies_midway(data, f, *args, **kwargs):
        real_save(data, f, *args, **kwargs)
        f.truncate(f.tell() // 2)  # half the bytes are on disk when the process is killed
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        save_at(checkpointer, counter, 3, "model_0000003")
    assert digests(tmp_path) == before  # no model_0000003.pth, no temporary file, the tag unchanged
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"


def test_resuming_a_checkpoint_of_another_model_is_refused_naming_the_tensors(tmp_path):
    _, checkpointer, counter = make(tmp_path, classes=3)
    save_at(checkpointer, counter, 1, "model_0000001")
    _, other, _ = make(tmp_path, classes=5)
    with pytest.raises(InvalidInput) as error:
        other.resume_or_load("", resume=True)
    message = str(error.value)
    assert f"{tmp_path / 'model_0000001.pth'}: cannot resume from this checkpoint" in message
    assert "1.weight (3, 8) in the checkpoint, (5, 8) in the model" in message
    # Loading its weights (not resuming) stays possible: detectron2 skips the mismatching ones.
    other.load(str(tmp_path / "model_0000001.pth"), checkpointables=[])
