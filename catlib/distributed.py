"""Several processes, one training run: torchrun's environment, the process group and the collectives of ``fit``.

``torchrun --nproc_per_node N ...`` starts ``N`` copies of a script and tells each who it is
through the environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``). :func:`init_distributed` reads it, starts the process group (NCCL for CUDA
tensors, Gloo for CPU tensors) and returns a :class:`DistributedContext`; with one process it
returns the single-process context and touches nothing, so code written for several GPUs runs
unchanged on one. Every helper here is a no-op for a single process.
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["DistributedContext", "SINGLE", "env_world", "init_distributed", "process_rank", "rank_seed",
           "all_reduce_mean", "broadcast_flag", "all_gather_objects", "barrier"]


@dataclass(frozen=True)
class DistributedContext:
    """Who this process is in a run of ``world_size`` processes (``rank`` 0 is the one that writes).

    >>> ctx = DistributedContext(rank=1, world_size=4, local_rank=1)
    >>> ctx.enabled, ctx.is_main, ctx.shard(256)
    (True, False, slice(64, 128, None))
    >>> SINGLE.shard(256)
    slice(0, 256, None)
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (it writes checkpoints and shows progress)."""
        return self.rank == 0

    def shard(self, batch_size: int) -> slice:
        """This rank's rows ``[rank * b / W, (rank + 1) * b / W)`` of a global batch of ``b`` rows.

        Raises ``ValueError`` if ``batch_size`` is not divisible by ``world_size``.
        """
        if batch_size % self.world_size:
            raise ValueError(f"batch_size must be divisible by the world size {self.world_size} (each process "
                             f"trains on batch_size / world_size rows of the global batch), got {batch_size}")
        local = batch_size // self.world_size
        return slice(self.rank * local, (self.rank + 1) * local)


#: The context of a run in one process.
SINGLE = DistributedContext()


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def env_world() -> DistributedContext | None:
    """The context torchrun describes in the environment, or ``None`` when ``WORLD_SIZE`` is unset or 1.

    >>> import os
    >>> env = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}
    >>> saved = {k: os.environ.get(k) for k in env}
    >>> os.environ.update(env)
    >>> env_world()
    DistributedContext(rank=1, world_size=2, local_rank=1)
    >>> for k, v in saved.items():
    ...     _ = os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    """
    world = _env_int("WORLD_SIZE")
    if world is None or world <= 1:
        return None
    rank = _env_int("RANK")
    if rank is None or not 0 <= rank < world:
        raise ValueError(f"environment variable RANK must be an integer in [0, {world}) when WORLD_SIZE={world}, "
                         f"got {os.environ.get('RANK')!r}")
    local = _env_int("LOCAL_RANK")
    return DistributedContext(rank=rank, world_size=world, local_rank=rank if local is None else local)


def process_rank() -> int:
    """This process's rank: the process group's if one is running, else torchrun's ``RANK``, else 0."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _env_int("RANK") or 0


def rank_seed(seed: int, rank: int) -> int:
    """The seed of the global generators on ``rank``: ``seed`` on rank 0 (as a single process), distinct elsewhere.

    Each rank draws its own noise (e.g. the argmax flows' samples of :math:`q(v \\mid x)`);
    the data draws come from a generator seeded with ``seed`` on every rank.

    >>> rank_seed(3, 0), rank_seed(3, 2)
    (3, 2000003)
    """
    return seed + 1_000_000 * rank


def init_distributed(distributed: bool | None = None,
                     device: str | torch.device | None = None) -> DistributedContext:
    """Join (or start) the process group of a multi-process run and say who this process is.

    Args:
        distributed: ``None`` (default): several processes if a process group is already running
            or torchrun's environment says ``WORLD_SIZE > 1``, else one. ``True``: several
            processes are required (``ValueError`` if neither is there). ``False``: one process,
            whatever the environment says.
        device: the device training will use; the group gets NCCL for CUDA tensors (and Gloo
            for CPU tensors) when CUDA is available and ``device`` is not the CPU, Gloo otherwise.

    Returns:
        the :class:`DistributedContext`; :data:`SINGLE` for one process.

    A group started here is destroyed when the interpreter exits.

    >>> init_distributed(False)
    DistributedContext(rank=0, world_size=1, local_rank=0)
    """
    if distributed is not None and not isinstance(distributed, bool):
        raise ValueError(f"distributed must be True, False or None, got {distributed!r}")
    if distributed is False:
        return SINGLE
    import torch.distributed as dist

    if not dist.is_available():
        if distributed:
            raise ValueError("distributed=True, but this torch build has no torch.distributed")
        return SINGLE
    env = env_world()
    if dist.is_initialized():
        world, rank = dist.get_world_size(), dist.get_rank()
        if world == 1 and not distributed:
            return SINGLE
        local = env.local_rank if env is not None else _env_int("LOCAL_RANK")
        return DistributedContext(rank=rank, world_size=world, local_rank=rank if local is None else local)
    if env is None:
        if distributed:
            raise ValueError("distributed=True needs several processes: launch with torchrun (it sets WORLD_SIZE, "
                             "RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT) or call "
                             "torch.distributed.init_process_group first")
        return SINGLE
    wants_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    if wants_cuda:
        torch.cuda.set_device(env.local_rank)
        backend = "cpu:gloo,cuda:nccl"  # NCCL for the CUDA tensors, Gloo for CPU ones (e.g. barrier objects)
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size)
    atexit.register(_destroy)
    return env


def _destroy() -> None:  # pragma: no cover - runs at interpreter exit
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: Tensor, ctx: DistributedContext) -> Tensor:
    """The mean of ``value`` over the ranks (in float64; ``value`` itself for one process).

    With equal batches per rank, the mean of the ranks' batch means is the global batch mean.
    """
    if not ctx.enabled:
        return value
    import torch.distributed as dist

    total = value.detach().to(torch.float64).clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / ctx.world_size


def broadcast_flag(flag: bool, ctx: DistributedContext, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. "a checkpoint is due", decided by rank 0's clock)."""
    if not ctx.enabled:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def all_gather_objects(obj, ctx: DistributedContext) -> list:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` for one process."""
    if not ctx.enabled:
        return [obj]
    import torch.distributed as dist

    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistributedContext) -> None:
    """Wait until every rank gets here (nothing for one process)."""
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()
