"""Shared fixtures: a fixed seed for every test, tiny generated images and checkpoints."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def interrupted(*args, **kwargs) -> None:
    """A stand-in that raises KeyboardInterrupt, as Ctrl-C would inside the function it
    replaces (``monkeypatch.setattr(module, name, interrupted)``)."""
    raise KeyboardInterrupt


def checkout_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess that must import this checkout's ``atbsn_edge``, not
    whichever copy the interpreter has installed (an editable install may point elsewhere):
    ``PYTHONPATH`` starts with the repository root. ``extra`` variables are added."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Calibration caches go to a per-test folder, never the user's ~/.cache; OpenVINO's model
    cache is off (each test would write its compiled IRs to its own folder), except where a
    test turns it on (test_openvino_cache.py, test_throughput.py)."""
    monkeypatch.setenv("ATBSN_EDGE_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("ATBSN_EDGE_OPENVINO_CACHE", "0")


@pytest.fixture(autouse=True)
def seed_everything():
    """Seed Python, NumPy and (when installed) PyTorch before each test."""
    random.seed(0)
    np.random.seed(0)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def torch_threads():
    """Restore PyTorch's thread count after each test: a CLI's ``main([... "--threads", "1"])``
    called in-process sets it for the whole process, and the tests after it would run on one
    core (the tiled-against-whole tests took twice as long in the suite as alone)."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def textured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic H x W x 3 float32 image (0..255) with edges, gradients and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 128 + 60 * np.sin(xx / 17.0) * np.cos(yy / 23.0)
    blocks = ((xx // 40 + yy // 40) % 2) * 50
    rgb = np.stack([base + blocks, base * 0.8 + 30, 200 - blocks], axis=2)
    rgb += rng.normal(0, 8, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.float32)


@pytest.fixture
def noisy_folder(tmp_path):
    """Two 192 x 160 noisy PNG frames (a textured image plus Gaussian noise, sigma 10)."""
    import cv2

    folder = tmp_path / "noisy"
    folder.mkdir()
    for i in range(2):
        image = textured_image(160, 192, seed=i)
        noisy = np.clip(image + np.random.default_rng(i).normal(0, 10, image.shape), 0, 255)
        cv2.imwrite(str(folder / f"frame{i}.png"), noisy.astype(np.uint8))
    return folder


def write_checkpoint(folder: Path, name: str = "student_c", **metadata) -> Path:
    """``folder/NAME.pt``: a He-initialised network of architecture ``name`` (seed 0) in the
    project's format."""
    import torch

    from atbsn_edge.models.checkpoint import save_checkpoint
    from atbsn_edge.models.registry import get_architecture
    from atbsn_edge.training import init_weights

    torch.manual_seed(0)
    network = get_architecture(name).build()
    init_weights(network)
    path = folder / f"{name}.pt"
    save_checkpoint(path, network, metadata)
    return path


@pytest.fixture
def make_checkpoint(tmp_path):
    """Write a He-initialised network of the given architecture in the project's format."""
    def make(name: str = "student_c", **metadata) -> Path:
        return write_checkpoint(tmp_path, name, **metadata)

    return make
