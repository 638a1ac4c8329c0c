"""The optimization loop shared by ``stylize`` (meshes) and ``imagine`` (the 2D mode).

How to plug a new problem in
----------------------------
Write an object with four methods (see :class:`Problem`)::

    class MyProblem:
        def parameters(self):             # the tensors Adam updates
            return self.model.parameters()
        def loss(self, step, generator):  # ONE scalar for iteration `step` (0-based), and a
            ...                           # dict of named float parts for logging; draw all
            return loss, {"clip": 0.3}    # randomness (views, crops) from `generator`
        def state_dict(self):             # what a checkpoint must hold to continue
            return self.model.state_dict()
        def load_state_dict(self, state):
            self.model.load_state_dict(state)

then run it::

    loop = Loop(MyProblem(...), cfg.optim)          # Adam + StepLR from the OptimConfig
    loop.run([ProgressBar(), Every(cfg.optim.snapshot_every, save_picture), my_checkpointer])

``Loop.run`` calls ``loss`` once per iteration, does one ``backward`` and one optimizer and
scheduler step, then tells every :class:`Callback` (``on_step``). Pictures and checkpoints are
callbacks (``Every(n, fn)`` calls ``fn(loop)`` every n steps and at the end). ``loop.state_dict()``
holds the problem, optimizer, scheduler, step, losses and the random generator's state, so
``loop.load_state_dict(saved)`` followed by ``run`` continues exactly where it stopped.
SIGINT/SIGTERM during ``run`` let the current step finish, call every callback's
``on_interrupt`` (save a checkpoint and an export there) and raise
:class:`~text2mesh.errors.Interrupted`; a second signal aborts at once.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from torch import Tensor

from .config import OptimConfig
from .errors import Interrupted

log = logging.getLogger(__name__)


class Problem(Protocol):
    """Anything the loop can optimize (see the module docstring)."""

    def parameters(self) -> Iterable[torch.nn.Parameter]: ...

    def loss(self, step: int, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Callback:
    """Hooks called by :meth:`Loop.run`; override what you need."""

    def on_start(self, loop: Loop) -> None:
        """Before the first step of this run (``loop.step`` may be > 0 after a resume)."""

    def on_step(self, loop: Loop, loss: float, parts: dict[str, float]) -> None:
        """After each step; ``loop.step`` is the number of steps done."""

    def on_interrupt(self, loop: Loop) -> None:
        """After the step during which SIGINT/SIGTERM arrived, before Interrupted is raised."""

    def on_end(self, loop: Loop) -> None:
        """After the last step (not called when interrupted)."""


class Loop:
    """Adam + StepLR over a :class:`Problem`, with resumable state.

    Args:
        problem: what to optimize.
        cfg: iterations, learning rate and schedule (``lr``, ``lr_decay`` every ``decay_step``).
        generator: CPU random source passed to ``problem.loss`` (default: seeded with cfg.seed).
    """

    def __init__(self, problem: Problem, cfg: OptimConfig, *, generator: torch.Generator | None = None) -> None:
        self.problem = problem
        self.cfg = cfg
        self.generator = generator if generator is not None else torch.Generator().manual_seed(cfg.seed)
        params = [p for p in problem.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=max(1, cfg.decay_step), gamma=cfg.lr_decay
        )
        self.step = 0
        self.losses: list[float] = []
        self.parts: list[dict[str, float]] = []

    @property
    def total(self) -> int:
        return self.cfg.iters

    def state_dict(self) -> dict[str, Any]:
        return {
            "problem": self.problem.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "losses": list(self.losses),
            "parts": [dict(p) for p in self.parts],
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.problem.load_state_dict(state["problem"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.losses = list(state["losses"])
        self.parts = [dict(p) for p in state.get("parts", [])]
        self.generator.set_state(state["generator"])

    def one_step(self) -> tuple[float, dict[str, float]]:
        """Loss, one backward, one optimizer and scheduler step."""
        self.optimizer.zero_grad(set_to_none=True)
        loss, parts = self.problem.loss(self.step, self.generator)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            log.warning("loss is %s at step %d", value, self.step)
        self.step += 1
        self.losses.append(value)
        self.parts.append(dict(parts))
        return value, parts

    def run(self, callbacks: Sequence[Callback] = (), *, handle_signals: bool = True) -> None:
        """Iterate from ``self.step`` to ``cfg.iters``.

        Raises:
            Interrupted: SIGINT/SIGTERM arrived; the current step finished and every callback's
                ``on_interrupt`` ran first.
        """
        for cb in callbacks:
            cb.on_start(self)
        with _stop_flag(handle_signals) as stop:
            while self.step < self.total:
                loss, parts = self.one_step()
                for cb in callbacks:
                    cb.on_step(self, loss, parts)
                if stop.is_set():
                    for cb in callbacks:
                        cb.on_interrupt(self)
                    raise Interrupted(f"interrupted by {stop.signal_name} after iteration {self.step} of {self.total}")
        for cb in callbacks:
            cb.on_end(self)


class _Stop:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name = ""

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self, name: str) -> None:
        self.signal_name = name
        self._event.set()


@contextmanager
def _stop_flag(enabled: bool):
    """Turn SIGINT/SIGTERM into a flag while the loop runs (main thread only); restore after."""
    stop = _Stop()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return
    signals = [signal.SIGINT, signal.SIGTERM]
    previous = {s: signal.getsignal(s) for s in signals}

    def handler(signum, frame):
        if stop.is_set():  # second signal: stop now
            signal.signal(signum, previous[signum])
            raise KeyboardInterrupt
        stop.set(signal.Signals(signum).name)

    for s in signals:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s in signals:
            signal.signal(s, previous[s])


class Every(Callback):
    """Call ``fn(loop)`` every ``n`` steps and once at the end (n <= 0: only at the end if ``at_end``)."""

    def __init__(self, n: int, fn: Callable[[Loop], None], *, at_end: bool = True, on_interrupt: bool = False) -> None:
        self.n = n
        self.fn = fn
        self.at_end = at_end
        self.call_on_interrupt = on_interrupt
        self._last = -1

    def _call(self, loop: Loop) -> None:
        if loop.step != self._last:
            self._last = loop.step
            self.fn(loop)

    def on_step(self, loop: Loop, loss: float, parts: dict[str, float]) -> None:
        if self.n > 0 and loop.step % self.n == 0:
            self._call(loop)

    def on_interrupt(self, loop: Loop) -> None:
        if self.call_on_interrupt:
            self._call(loop)

    def on_end(self, loop: Loop) -> None:
        if self.at_end:
            self._call(loop)


class ProgressBar(Callback):
    """A tqdm bar on stderr with the iteration, the loss and the ETA (disabled: no output)."""

    def __init__(self, *, disable: bool = False, desc: str = "stylize") -> None:
        self.disable = disable
        self.desc = desc
        self._bar = None

    def on_start(self, loop: Loop) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=loop.total, initial=loop.step, desc=self.desc, disable=self.disable, unit="it", dynamic_ncols=True
        )

    def on_step(self, loop: Loop, loss: float, parts: dict[str, float]) -> None:
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self._bar.update(1)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_interrupt(self, loop: Loop) -> None:
        self._close()

    def on_end(self, loop: Loop) -> None:
        self._close()
