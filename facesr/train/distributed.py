"""What the training loop needs to run as one of N data-parallel workers (DDP) of a trial.

`facesr.train.trials` starts the workers (Ray Train's TorchTrainer, which also sets up the process
group: gloo on CPU, nccl on CUDA) and hands the loop a `Distributed`; the loop stays free of Ray.
A trial of one worker never builds one: its path is exactly the single-process loop.

The N workers train the recipe one worker would: each takes its share of the same global batch
(`facesr.train.data.Shard`), DDP averages the gradients, and BatchNorm normalises with the
statistics of the whole global batch (`sync_batchnorm`), so the loss curve is the one-worker curve
up to the order of float reductions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from facesr.train.data import Shard


@dataclass(frozen=True)
class Distributed:
    """This worker's place in the trial's process group (already initialised) and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world_size)

    @property
    def leader(self) -> bool:
        """Rank 0: the one worker that validates, writes checkpoints and exports."""
        return self.rank == 0

    def wrap(self, module: nn.Module) -> nn.Module:
        """`module` with global-batch BatchNorm, in DDP (gradients averaged over the workers);
        its state_dict keys are the unwrapped module's, which checkpoints keep using."""
        from torch.nn.parallel import DistributedDataParallel

        sync_batchnorm(module)
        device_ids = [self.device.index] if self.device.type == "cuda" and self.device.index is not None else None
        return DistributedDataParallel(module, device_ids=device_ids)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the workers (every worker calls it at the same step): a batch
        mean over equal shards is the mean over the global batch."""
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values.values()], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(values, t.tolist())}

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every worker (a resumed checkpoint's state: CPU tensors, numbers, lists)."""
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self._comm_device)
        return box[0]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    @property
    def _comm_device(self) -> torch.device:
        # nccl communicates CUDA tensors only, gloo CPU tensors
        return self.device if self.device.type == "cuda" else torch.device("cpu")


class _AllReduceSum(torch.autograd.Function):
    """Sum over the workers, differentiable: the gradient of each worker's input is the sum of the
    workers' output gradients (every worker's loss depends on every worker's statistics)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(grad)


class _GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch, on any device.

    torch's SyncBatchNorm runs on CUDA only; this computes the per-channel sum and sum of squares
    of the local rows, all-reduces them (autograd-aware: the backward all-reduces the gradients of
    the statistics, as SyncBatchNorm's does) and normalises with the global mean and biased
    variance; the running statistics get the unbiased one, as BatchNorm2d's do. In eval mode it is
    BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        xf = x.float()  # statistics in fp32 under autocast too
        local = torch.stack([xf.sum(dim=(0, 2, 3)), (xf * xf).sum(dim=(0, 2, 3))])
        count = torch.tensor(float(x.numel() // x.shape[1]), device=x.device)
        stats = _AllReduceSum.apply(torch.cat([local, count.expand(1, local.shape[1])]))
        total = stats[2]
        mean = stats[0] / total
        var = (stats[1] / total - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                unbiased = var.detach() * total / (total - 1).clamp_min(1)
                self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
        y = (xf - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d of `module` in place by one that normalises over the global batch
    (torch's SyncBatchNorm on CUDA, `_GlobalBatchNorm2d` elsewhere) and holds the same parameter and
    buffer tensors (so the state_dict keys and the optimizer's parameters stay as they were)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            device = next(iter(child.state_dict().values())).device
            cls = nn.SyncBatchNorm if device.type == "cuda" else _GlobalBatchNorm2d
            new = cls(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            # the very parameters and buffers: the optimizer already holds these parameters
            for key, value in [*child.named_parameters(recurse=False), *child.named_buffers(recurse=False)]:
                setattr(new, key, value)
            new.train(child.training)
            setattr(module, name, new)
        else:
            sync_batchnorm(child)
    return module
