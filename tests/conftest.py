"""Fixtures shared by several test modules."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Run a module on one intra-op thread, restoring the caller's setting afterwards.

    These tests use small tensors, for which one thread is many times faster than two on a
    busy 2-core machine (thread hand-off dominates the work).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    """The shipped tiny CLIP (text2mesh-tiny), loaded once per module."""
    from text2mesh.guidance.clip import TINY_MODEL, load_clip

    return load_clip(TINY_MODEL)

