"""Intra-op thread count used while the renderer's own kernels run (forward and backward).

Opt-in (``Renderer(threads=n)``); by default the renderer runs on the caller's setting. The
renderer runs a few hundred small, memory-bound PyTorch ops per call, each a fork-join when
several intra-op threads are used. When the CPU is heavily oversubscribed a descheduled worker
stalls every op (a render that needs 0.1 s on one thread was measured to need 1-4 s on two
with six processes sharing two cores), and forcing one thread helps; on a normally loaded
machine two threads are faster (scripts/bench_render.py --threads 2: 0.032 s with the caller's
2 threads vs 0.052 s forced to 1). ``torch.set_num_threads`` is process-wide, so this is not
safe with several Python threads rendering at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

__all__ = ["intra_op_threads", "scope_backward_threads"]


@contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """Run the body with ``threads`` intra-op threads (None: leave the setting alone)."""
    previous = torch.get_num_threads()
    if threads is None or threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _State:
    """The caller's thread count while a backward pass runs the renderer's part."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.previous: int | None = None

    def enter(self) -> None:
        if self.previous is None:
            self.previous = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            torch.autograd.Variable._execution_engine.queue_callback(self.leave)

    def leave(self) -> None:
        if self.previous is not None:
            torch.set_num_threads(self.previous)
            self.previous = None


class _OnBackward(torch.autograd.Function):
    """Identity on tensors whose backward first calls ``action``.

    Placed on the renderer's outputs with ``state.enter`` (the backward switches to the
    renderer's threads) and on its inputs with ``state.leave`` (restores the caller's).
    """

    @staticmethod
    def forward(ctx, action, *tensors: Tensor):
        ctx.action = action
        return tuple(t.view_as(t) for t in tensors)

    @staticmethod
    def backward(ctx, *grads):
        ctx.action()
        return (None, *grads)


def scope_backward_threads(inputs: Sequence[Tensor], run, threads: int | None):
    """Run ``outputs = run(*inputs)`` so that its backward uses ``threads`` intra-op threads.

    The switch happens when the backward pass reaches the outputs and is undone when it
    reaches the inputs (or, at the latest, when the backward pass ends).

    Args:
        inputs: tensors the computation differentiates with respect to.
        run: callable taking the (marked) inputs, returning a tuple of output tensors.
        threads: thread count, or None to run ``run`` unchanged.
    Returns:
        the tuple of outputs.
    """
    tracked = [i for i, t in enumerate(inputs) if t.requires_grad]
    if threads is None or not torch.is_grad_enabled() or not tracked:
        return run(*inputs)
    state = _State(threads)
    marked = list(inputs)
    for i, t in zip(tracked, _OnBackward.apply(state.leave, *(inputs[i] for i in tracked))):
        marked[i] = t
    outputs = list(run(*marked))
    differentiable = [i for i, t in enumerate(outputs) if t.requires_grad]
    for i, t in zip(
        differentiable, _OnBackward.apply(state.enter, *(outputs[i] for i in differentiable))
    ):
        outputs[i] = t
    return tuple(outputs)
