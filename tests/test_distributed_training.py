"""Two-process training on CPU (gloo) through detectron2's SimpleTrainer with DDP: both ranks
must end with identical parameters (gradients averaged, no unused parameter)."""
import os
import socket
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REPO = Path(__file__).resolve().parents[1]


def train_rank(rank: int, world_size: int, port: int, datasets_root: str, results: dict) -> None:
    sys.path[:0] = [str(REPO), str(REPO / "tests")]  # train_net.py and the test fixtures
    import sgnet  # noqa: F401  (in the spawned interpreter)
    from detectron2.engine import SimpleTrainer
    from detectron2.modeling import build_model
    from detectron2.solver import build_optimizer
    from detectron2.utils import comm
    from torch.nn.parallel import DistributedDataParallel

    from distributed_fixtures import leave_process_group
    from model_fixtures import tiny_cfg
    from train_net import Trainer

    os.environ["DETECTRON2_DATASETS"] = datasets_root
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    comm._LOCAL_PROCESS_GROUP = dist.new_group(list(range(world_size)))
    torch.manual_seed(rank)  # different initialisations: DDP must broadcast rank 0's
    cfg = tiny_cfg(
        **{
            "MODEL.SGNET.NUM_CLASSES": 3,
            "SOLVER.IMS_PER_BATCH": 2 * world_size,
            "DATALOADER.NUM_WORKERS": 0,
            "INPUT.MIN_SIZE_TRAIN": (96, 96),
            "INPUT.MAX_SIZE_TRAIN": 160,
        }
    )
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    ddp_model = DistributedDataParallel(model, device_ids=None, broadcast_buffers=False)
    trainer = SimpleTrainer(ddp_model, Trainer.build_train_loader(cfg), optimizer)
    trainer.train(0, 2)
    results[rank] = {name: p.detach().clone() for name, p in model.named_parameters()}
    leave_process_group()


def test_two_ranks_end_with_identical_parameters(tmp_path):
    from sgnet.data import generate_synthetic_ytvis

    generate_synthetic_ytvis(tmp_path / "sgnet_toy", num_train_videos=4, num_val_videos=1, num_frames=3, height=96, width=160)
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(train_rank, args=(2, free_port(), str(tmp_path), results), nprocs=2, join=True)
    rank0, rank1 = results[0], results[1]
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    # And training moved them away from the initialisation DDP broadcast (rank 0's).
    from detectron2.modeling import build_model

    from model_fixtures import tiny_cfg

    torch.manual_seed(0)
    initial = dict(build_model(tiny_cfg(**{"MODEL.SGNET.NUM_CLASSES": 3})).named_parameters())
    moved = [name for name in rank0 if not torch.equal(initial[name].detach(), rank0[name])]
    assert len(moved) > len(rank0) // 2
