"""What a full disk, a failed allocation or an odd output path does to a run: one line that
names the file and the fix, the other images go on, nothing earlier is lost (found by an
audit on 2026-12-07 with a 200 KB tmpfs)."""
from __future__ import annotations

import errno
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from atbsn_edge.atomic import atomic_path
from atbsn_edge.cli import run_cli, user_error_line
from atbsn_edge.denoise import main as denoise
from atbsn_edge.errors import AtbsnError
from test_denoise_cli import TILED, error_lines, only_error, rgb_u8, save

def test_a_full_disk_names_the_target_not_the_temporary(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(OSError) as info:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.filename == str(target) and info.value.errno == errno.ENOSPC
    assert user_error_line(info.value) == (
        f"{target}: No space left on device; the disk is full: free space on it, or write "
        "somewhere else")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_a_failed_copy_of_a_folder_is_one_line():
    error = shutil.Error([("/b/model.onnx", "/b/.out.tmp/model.onnx",
                           "[Errno 28] No space left on device")])
    assert user_error_line(error) == "cannot copy /b/model.onnx: [Errno 28] No space left on device"


def test_a_checkpoint_that_does_not_fit_on_the_disk_is_one_line(tmp_path, monkeypatch):
    """PyTorch's zip writer reports a short write as a RuntimeError; training used to end in
    its traceback. The checkpoint written before stays whole."""
    import torch

    from atbsn_edge.models.checkpoint import load_checkpoint, save_checkpoint
    from atbsn_edge.models.registry import get_architecture

    network = get_architecture("student_a").build()
    out = tmp_path / "run.pt"
    save_checkpoint(out, network, {"model": "student_a"})
    before = out.read_bytes()

    def short_write(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 188032 "
                           "vs 187920")

    monkeypatch.setattr(torch, "save", short_write)
    with pytest.raises(AtbsnError) as info:
        save_checkpoint(out, network, {"model": "student_a"})
    line = str(info.value)
    assert line.startswith(f"cannot write the checkpoint {out} (") and "MB free on its disk" in line
    assert out.read_bytes() == before and list(tmp_path.iterdir()) == [out]
    monkeypatch.undo()
    load_checkpoint(out)


@pytest.mark.parametrize("message", [
    "[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: you "
    "tried to allocate 28827648000 bytes. Error code 12 (Cannot allocate memory)",
    "OpenCV(4.12.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate "
    "30000000000 bytes in function 'OutOfMemoryError'"])
def test_an_allocation_a_library_refused_is_one_line(capsys, message):
    def job():
        raise RuntimeError(message)

    assert run_cli(job) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: out of memory (") and "--tile" in err[0]


def test_another_runtime_error_keeps_its_traceback():
    def job():
        raise RuntimeError("a defect")

    with pytest.raises(RuntimeError, match="a defect"):
        run_cli(job)


@pytest.fixture
def ckpt(make_checkpoint):
    return make_checkpoint("student_a")


def test_out_of_memory_in_pytorch_fails_that_image_only(tmp_path, ckpt, capsys, monkeypatch):
    import atbsn_edge.pipeline as pipeline

    src = tmp_path / "in"
    for name, seed in (("a.png", 1), ("b.png", 2)):
        save(src / name, rgb_u8(seed=seed)[:, :, ::-1])
    real = pipeline.TiledRuntime.denoise
    calls = []

    def denoise_or_run_out(self, rgb, progress=None):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to "
                               "allocate 28827648000 bytes")
        return real(self, rgb, progress)

    monkeypatch.setattr(pipeline.TiledRuntime, "denoise", denoise_or_run_out)
    out = tmp_path / "out"
    assert denoise([str(src), "-o", str(out), "--checkpoint", str(ckpt), *TILED]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["b.png"]
    line = only_error(capsys)
    assert "a.png" in line and "out of memory while denoising it" in line


def test_a_comparison_picture_that_cannot_be_written_fails_its_image_only(tmp_path, ckpt,
                                                                          capsys):
    """It stopped the whole batch, naming an internal temporary."""
    src = tmp_path / "in"
    for name, seed in (("a.png", 1), ("b.png", 2)):
        save(src / name, rgb_u8(seed=seed)[:, :, ::-1])
    out = tmp_path / "out"
    (out / "a_compare.png").mkdir(parents=True)   # the name is taken by a folder
    assert denoise([str(src), "-o", str(out), "--checkpoint", str(ckpt), "--compare",
                    "--overwrite", *TILED]) == 1
    assert (out / "b.png").is_file() and (out / "b_compare.png").is_file()
    line = only_error(capsys)
    assert line.startswith(f"error: {out / 'a_compare.png'}: cannot write (") and ".tmp" not in line


def test_frames_may_share_a_clean_reference(tmp_path, ckpt, capsys):
    """Repeated --clean files were merged into one, and the count then refused."""
    frames = [save(tmp_path / f"f{i}.png", rgb_u8(seed=i)[:, :, ::-1]) for i in range(3)]
    clean = save(tmp_path / "clean.png", rgb_u8(seed=9)[:, :, ::-1])
    out = tmp_path / "out"
    assert denoise([*map(str, frames), "-o", str(out), "--checkpoint", str(ckpt), "--compare",
                    "--clean", str(clean), str(clean), str(clean), *TILED]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "f0.png", "f0_compare.png", "f1.png", "f1_compare.png", "f2.png", "f2_compare.png"]
    assert error_lines(capsys.readouterr().err) == []


@pytest.mark.parametrize("flags, message", [
    (["-o", ""], "argument -o/--output: expected a path, got an empty string"),
    (["-o", "x", "--requests", "100000"], "argument --requests: 100000 requests in flight is "
                                          "more than 64")])
def test_an_empty_output_path_and_endless_requests_are_refused(tmp_path, capsys, flags, message):
    image = save(tmp_path / "a.png", rgb_u8()[:, :, ::-1])
    with pytest.raises(SystemExit) as info:
        denoise([str(image), *flags])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_tiles_that_only_abut_blend_without_a_warning():
    from atbsn_edge.tiling import feather_weights

    with warnings.catch_warnings():
        warnings.simplefilter("error")   # it divided by a zero overlap
        weights = feather_weights([0, 32, 64], 32, 96)
    assert all(np.array_equal(w, np.ones(32, np.float32)) for w in weights)


def test_a_read_only_file_system_is_named_as_such(tmp_path, monkeypatch):
    """It said "no permission to write in X", with no fix; a mount cannot be made read-only
    here without root, so the file system's flag is stood in for."""
    import os

    import atbsn_edge.output_paths as output_paths

    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    monkeypatch.setattr(os, "statvfs", lambda path: type("S", (), {"f_flag": os.ST_RDONLY})())
    with pytest.raises(AtbsnError, match=r"is on a read-only file system; write somewhere else"):
        output_paths.check_output_path(tmp_path / "o.png", "-o")
    monkeypatch.setattr(os, "statvfs", lambda path: type("S", (), {"f_flag": 0})())
    with pytest.raises(AtbsnError, match=r"no permission to write in .*; choose a folder you may"):
        output_paths.check_output_path(tmp_path / "o.png", "-o")


def test_a_repeated_pair_is_kept_once_and_a_conflict_refused(tmp_path, ckpt, capsys):
    """Inputs were merged but references not: `a b a --clean ca cb ca` was refused."""
    a, b = (save(tmp_path / f"{n}.png", rgb_u8(seed=i)[:, :, ::-1]) for i, n in enumerate("ab"))
    ca, cb = (save(tmp_path / f"c{n}.png", rgb_u8(seed=5 + i)[:, :, ::-1])
              for i, n in enumerate("ab"))
    out = tmp_path / "out"
    base = ["-o", str(out), "--checkpoint", str(ckpt), "--compare", *TILED]
    assert denoise([str(a), str(b), str(a), *base, "--clean", str(ca), str(cb), str(ca)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_compare.png", "b.png",
                                                     "b_compare.png"]
    capsys.readouterr()
    assert denoise([str(a), str(a), *base, "--overwrite", "--clean", str(ca), str(cb)]) == 2
    assert only_error(capsys) == (f"error: {a} is given twice, with the clean references {ca} "
                                  f"and {cb}; give each noisy image once")


def test_a_file_inside_a_staged_folder_keeps_its_own_part_of_the_name(tmp_path):
    target = tmp_path / "bundle"
    with pytest.raises(PermissionError) as info:
        with atomic_path(target) as tmp:
            tmp.mkdir()
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp / "w" / "model.bin"))
    assert info.value.filename == str(target / "w" / "model.bin")
    with pytest.raises(OSError) as info:   # not a write error: no file is blamed
        with atomic_path(target) as tmp:
            raise OSError(errno.ENOMEM, "Cannot allocate memory")
    assert info.value.filename is None
