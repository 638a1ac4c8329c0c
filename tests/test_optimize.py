import os
import signal

import pytest
import torch

from text2mesh.config import OptimConfig
from text2mesh.errors import Interrupted
from text2mesh.optimize import Callback, Every, Loop, ProgressBar


class Quadratic:
    """Fit a vector to a noisy target: a tiny Problem that uses the loop's generator."""

    def __init__(self, on_loss=None):
        self.x = torch.nn.Parameter(torch.zeros(4))
        self.on_loss = on_loss

    def parameters(self):
        return [self.x]

    def loss(self, step, generator):
        if self.on_loss:
            self.on_loss(step)
        target = torch.ones(4) + 0.1 * torch.randn(4, generator=generator)
        value = ((self.x - target) ** 2).sum()
        return value, {"fit": float(value.detach())}

    def state_dict(self):
        return {"x": self.x.detach().clone()}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.x.copy_(state["x"])


def cfg(**kw):
    base = {"iters": 30, "lr": 0.05, "lr_decay": 0.5, "decay_step": 10, "seed": 1}
    base.update(kw)
    return OptimConfig(**base)


def test_loss_decreases_and_schedule_decays():
    loop = Loop(Quadratic(), cfg())
    loop.run()
    assert loop.step == 30 and len(loop.losses) == 30
    assert loop.losses[-1] < 0.1 * loop.losses[0]
    assert loop.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 0.5**3)


def test_resume_from_state_matches_uninterrupted_run():
    full = Loop(Quadratic(), cfg())
    full.run()
    first = Loop(Quadratic(), cfg(iters=12))
    first.run()
    saved = first.state_dict()
    second = Loop(Quadratic(), cfg())
    second.load_state_dict(saved)
    assert second.step == 12
    second.run()
    assert second.step == 30
    assert second.losses == pytest.approx(full.losses, abs=1e-6)
    assert torch.allclose(second.problem.x, full.problem.x)


def test_same_seed_same_run_different_seed_differs():
    a, b, c = Loop(Quadratic(), cfg()), Loop(Quadratic(), cfg()), Loop(Quadratic(), cfg(seed=2))
    for loop in (a, b, c):
        loop.run()
    assert a.losses == b.losses and a.losses != c.losses


def test_every_calls_on_schedule_and_at_end():
    calls = []
    Loop(Quadratic(), cfg(iters=25)).run([Every(10, lambda loop: calls.append(loop.step))])
    assert calls == [10, 20, 25]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_the_step_saves_and_raises_interrupted(signum):
    events = []

    class Saver(Callback):
        def on_interrupt(self, loop):
            events.append(("saved", loop.step))

    def send_signal(step):
        if step == 4:
            os.kill(os.getpid(), signum)

    loop = Loop(Quadratic(on_loss=send_signal), cfg())
    previous = signal.getsignal(signum)
    with pytest.raises(Interrupted, match=f"{signal.Signals(signum).name} after iteration 5 of 30"):
        loop.run([Saver()])
    assert events == [("saved", 5)] and loop.step == 5
    assert signal.getsignal(signum) is previous  # handler restored


def test_progress_bar_shows_loss_and_eta_and_quiet_prints_nothing(capsys):
    Loop(Quadratic(), cfg(iters=3)).run([ProgressBar()])
    err = capsys.readouterr().err
    assert "3/3" in err and "loss=" in err and "<" in err  # tqdm's elapsed<remaining
    Loop(Quadratic(), cfg(iters=3)).run([ProgressBar(disable=True)])
    assert capsys.readouterr().err == ""
