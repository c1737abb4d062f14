"""Ending a test's gloo worker process (spawned with torch.multiprocessing)."""
import os
import sys

import torch.distributed as dist


def leave_process_group() -> None:
    """Wait for every rank, tear the process group down and end this worker process.

    Call it only after the worker's work succeeded: failures must stay exceptions, which spawn
    reports. Ranks leave together because a rank tearing gloo down while its peer still
    communicates aborts the peer. The process then ends without interpreter finalisation
    (`os._exit`): with torch 2.13, gloo threads that outlive `destroy_process_group` can abort a
    finalising interpreter ("terminate called without an active exception", SIGABRT) after all
    the work was done, which failed CI runs now and then.
    """
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
