"""A resumable iterator over shuffled mini-batches of in-memory tensors, sharded over ranks."""
from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Sequence, Tuple, Union

import torch

from ..types import Tensor

Batch = Union[Tensor, Tuple[Tensor, ...]]


class InfiniteBatches:
    """Shuffled mini-batches of in-memory tensors, epoch after epoch, sharded over ranks.

    Each epoch draws a permutation ``perm = randperm(N)`` from the iterator's generator. Its
    ``k``-th global batch is ``perm[k G : (k + 1) G]`` with ``G = world_size * batch_size``,
    and rank ``r`` gets the slice ``[r * batch_size, (r + 1) * batch_size)`` of it. Given
    generators with the same seed, all ranks draw the same permutation, so at every step their
    batches are disjoint and, concatenated in rank order, equal the batch a single process
    would get with ``batch_size = G``.

    With ``drop_last=True`` an epoch has ``N // G`` steps and the last ``N mod G`` examples of
    each permutation are skipped. With ``drop_last=False`` it has ``ceil(N / G)`` steps and the
    last global batch is the remainder, split over ranks by ``torch.tensor_split`` (sizes
    differ by at most one; a rank may get an empty batch if the remainder is shorter than
    ``world_size``).

    ``state_dict()`` holds the epoch, the position in it and the generator state at the start
    of the epoch; ``load_state_dict()`` on a fresh iterator over the same data redraws that
    epoch's permutation, so a resumed run sees exactly the batches an uninterrupted run would.

    Args:
        data: a tensor ``(N, ...)`` or a tuple of tensors with the same ``N`` (e.g.
            ``(images, labels)``); batches have the same structure. Indexing happens on each
            tensor's device.
        batch_size: examples per batch on this rank.
        generator: its state seeds the shuffling; it is copied, so the iterator owns its random
            stream and the caller's generator is not advanced. Default: a fresh random seed.
        rank: this process's rank in ``[0, world_size)``.
        world_size: number of processes sharing each global batch.
        drop_last: skip each epoch's incomplete last global batch.
    """

    def __init__(
        self,
        data: Union[Tensor, Sequence[Tensor]],
        batch_size: int,
        *,
        generator: Optional[torch.Generator] = None,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> None:
        self._single = isinstance(data, torch.Tensor)
        self.tensors: Tuple[Tensor, ...] = (data,) if self._single else tuple(data)
        if not self.tensors or not all(isinstance(t, Tensor) and t.ndim >= 1 for t in self.tensors):
            raise ValueError("data must be a tensor (N, ...) or a non-empty sequence of such tensors")
        self.num_examples = self.tensors[0].shape[0]
        if any(t.shape[0] != self.num_examples for t in self.tensors):
            raise ValueError(
                "all tensors in data must have the same first dim; got "
                + ", ".join(str(t.shape[0]) for t in self.tensors)
            )
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need batch_size >= 1, world_size >= 1 and 0 <= rank < world_size; got "
                f"batch_size={batch_size}, rank={rank}, world_size={world_size}"
            )
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        if self.num_examples == 0 or (drop_last and self.num_examples < self.global_batch_size):
            raise ValueError(
                f"{self.num_examples} examples do not fill one global batch of "
                f"{self.global_batch_size} (= world_size * batch_size); use a smaller batch_size "
                "or drop_last=False"
            )
        if generator is None:
            self.generator = torch.Generator()
            self.generator.seed()
        else:
            self.generator = torch.Generator(device=generator.device)
            self.generator.set_state(generator.get_state())
        self._start_epoch(0)

    @property
    def global_batch_size(self) -> int:
        """``world_size * batch_size``: examples per step over all ranks."""
        return self.world_size * self.batch_size

    @property
    def batches_per_epoch(self) -> int:
        """Steps per epoch (the same on every rank)."""
        if self.drop_last:
            return self.num_examples // self.global_batch_size
        return -(-self.num_examples // self.global_batch_size)

    @property
    def epoch(self) -> int:
        """Index of the current epoch (starting at 0)."""
        return self._epoch

    @property
    def position(self) -> int:
        """Number of steps already taken in the current epoch."""
        return self._position

    def _start_epoch(self, epoch: int) -> None:
        self._epoch = epoch
        self._position = 0
        self._epoch_start_state = self.generator.get_state()
        self._perm = torch.randperm(
            self.num_examples, generator=self.generator, device=self.generator.device
        )

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        if self._position >= self.batches_per_epoch:
            self._start_epoch(self._epoch + 1)
        g, b = self.global_batch_size, self.batch_size
        step = self._perm[self._position * g : (self._position + 1) * g]
        if step.numel() == g:
            index = step[self.rank * b : (self.rank + 1) * b]
        else:
            index = torch.tensor_split(step, self.world_size)[self.rank]
        self._position += 1
        batch = tuple(t[index.to(t.device)] for t in self.tensors)
        return batch[0] if self._single else batch

    def state_dict(self) -> Dict[str, Any]:
        """The iterator's position: ``epoch``, ``position`` (steps taken in the epoch),
        ``generator`` (its state at the start of the epoch, a uint8 tensor) and the sizes it
        must be restored with. Identical on all ranks. Saves with ``torch.save`` and loads
        with ``torch.load(weights_only=True)``."""
        return {
            "epoch": self._epoch,
            "position": self._position,
            "generator": self._epoch_start_state.clone(),
            "num_examples": self.num_examples,
            "global_batch_size": self.global_batch_size,
            "drop_last": self.drop_last,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Continue from ``state_dict()`` of an iterator over the same data.

        The number of examples, the global batch size and ``drop_last`` must match (the split
        of a global batch into ``world_size`` ranks may differ).
        """
        for key in ("num_examples", "global_batch_size", "drop_last"):
            if state[key] != getattr(self, key):
                raise ValueError(
                    f"cannot resume: the saved iterator had {key}={state[key]}, this one has "
                    f"{getattr(self, key)}"
                )
        if not 0 <= state["position"] <= self.batches_per_epoch:
            raise ValueError(
                f"saved position {state['position']} is outside 0..{self.batches_per_epoch}"
            )
        self.generator.set_state(state["generator"].cpu())
        self._start_epoch(int(state["epoch"]))
        self._position = int(state["position"])
