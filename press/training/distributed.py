"""Distributed context: which rank this process is, its device, and the collectives the loop needs.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them the run is a single process and every
collective here is a no-op, so the loop has one code path. NCCL on GPUs, gloo on CPU.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass

import torch
import torch.distributed as dist

from press.model.device import resolve_device


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (a copy; the input is left alone)."""
        t = t.clone()
        if self.world > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def gather_ints(self, value: int) -> list[int]:
        """One integer from every rank, in rank order."""
        if self.world == 1:
            return [value]
        t = torch.tensor([value], dtype=torch.int64, device=self.device)
        out = [torch.zeros_like(t) for _ in range(self.world)]
        dist.all_gather(out, t)
        return [int(x) for x in out]

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def setup(device: str = "auto") -> Dist:
    """Join the process group torchrun describes (if any) and pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return Dist(rank=rank, world=world, device=dev)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def weights_digest(model: torch.nn.Module) -> int:
    """CRC-32 of every parameter's bytes: equal on two ranks only if their weights are bit-identical."""
    crc = 0
    for p in model.parameters():
        crc = zlib.crc32(p.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes(), crc)
    return crc
