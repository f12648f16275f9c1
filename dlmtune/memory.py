"""Exact tensor-memory accounting of a training step, on real tensors or on the meta device.

`LiveTensorBytes` is a TorchDispatchMode (PyTorch's extension point for intercepting every ATen call,
autograd's backward included) that adds up the bytes of every tensor storage an operator creates and
subtracts them when the storage is freed (a weak reference's finalizer). Its peak is what the tensor
allocator would peak at: views share their base's storage and in-place ops create none, so neither is
counted twice. What it cannot see is scratch memory an operator allocates and frees inside its own
kernel, which is why the count is checked against the allocator's real peak on a small model
(benchmarks/bench_memory.py, tests/test_memory.py).

On the meta device the same count needs no memory at all, so an 8B model's step can be priced on a
laptop: `meta_step` runs the step with the model's parameters on the meta device and the (small) batch
and random draws on the CPU. The mode moves the CPU operands of any operator that also has a meta operand
to the meta device, so data-dependent index computations (which tokens get masked, `nonzero`) run for
real and everything that touches the weights runs as shapes only; a CPU tensor sent to the weights'
device (`.to(meta)`, as models do with their attention mask) stays on the CPU, so checks of its values
(`mask.all()`) still work.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map_only

Tensor = torch.Tensor
META = torch.device("meta")


def tensor_bytes(tensors: Iterable[Tensor]) -> int:
    """Bytes of the distinct storages behind `tensors` (a view and its base count once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen[id(storage)] = storage.nbytes()
    return sum(seen.values())


class LiveTensorBytes(TorchDispatchMode):
    """Counts the bytes of tensor storages created while active and still alive: `live` now, `peak` the
    most at any point. Storages that existed before entering are not counted (add them yourself)."""

    def __init__(self, to_meta: bool = False):
        super().__init__()
        self.to_meta = to_meta
        self.live = 0
        self.peak = 0
        self._tracked: set[int] = set()

    def _track(self, t: Tensor) -> None:
        storage = t.untyped_storage()
        key = id(storage)
        if key in self._tracked:
            return
        size = storage.nbytes()
        self._tracked.add(key)
        self.live += size
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._free, key, size)

    def _free(self, key: int, size: int) -> None:
        self._tracked.discard(key)
        self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.to_meta and func is torch.ops.aten._to_copy.default and kwargs.get("device") == META:
            kwargs = {k: v for k, v in kwargs.items() if k != "device"}  # batch data stays real (see above)
        elif self.to_meta:
            flat, _ = tree_flatten((args, kwargs))
            if any(isinstance(x, Tensor) and x.is_meta for x in flat):
                args, kwargs = tree_map_only(Tensor, lambda t: t if t.is_meta else t.to("meta"), (args, kwargs))
        before = {id(x.untyped_storage()) for x in tree_flatten((args, kwargs))[0] if isinstance(x, Tensor)}
        out = func(*args, **kwargs)
        for t in tree_flatten(out)[0]:
            if isinstance(t, Tensor) and id(t.untyped_storage()) not in before:
                self._track(t)
        return out


_sdpa = torch.nn.functional.scaled_dot_product_attention


def _fused_attention_on_meta(query: Tensor, key: Tensor, value: Tensor, *args, **kwargs) -> Tensor:
    """`scaled_dot_product_attention`, through the fused (flash) kernel when its inputs are on the meta
    device. Left alone it picks its backend by device and takes the unfused math path on meta, which
    stores the [B, H, L, L] attention weights that the fused kernels of a real CPU or GPU never keep."""
    if not query.is_meta:
        return _sdpa(query, key, value, *args, **kwargs)
    kwargs.pop("enable_gqa", None)
    if key.shape[-3] != query.shape[-3]:
        repeat = query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(repeat, -3), value.repeat_interleave(repeat, -3)
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(query, key, value, *args, **kwargs)[0]


@contextmanager
def fused_attention_on_meta() -> Iterator[None]:
    """Route `torch.nn.functional.scaled_dot_product_attention` through `_fused_attention_on_meta` for the
    duration, in every thread (activation checkpointing recomputes in autograd's backward thread, where
    a thread-local mode would not be active)."""
    torch.nn.functional.scaled_dot_product_attention = _fused_attention_on_meta
    try:
        yield
    finally:
        torch.nn.functional.scaled_dot_product_attention = _sdpa


def peak_bytes(step: Callable[[], object], *, meta: bool = False) -> int:
    """Peak bytes of tensor storages that `step` creates, above what existed when it began (the counterpart
    of `torch.cuda.max_memory_allocated` after a reset, minus the memory already held). With `meta=True`
    the step's model is expected on the meta device (see the module docstring)."""
    with LiveTensorBytes(to_meta=meta) as counter:
        if meta:
            with fused_attention_on_meta():
                step()
        else:
            step()
    return counter.peak
