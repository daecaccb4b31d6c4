"""Training and distillation CLIs: tiny real runs, resume, bad input, DDP with two CPU processes."""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from atbsn_edge.distill import main as distill_main  # noqa: E402
from atbsn_edge.errors import AtbsnError  # noqa: E402
from atbsn_edge.train import main as train_main  # noqa: E402
from conftest import checkout_env, interrupted, textured_image, write_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--batch", "1", "--crop", "128", "--threads", "1"]


def test_train_resume_and_metadata(noisy_folder, tmp_path, caplog):
    out = tmp_path / "atbsn.pt"
    assert train_main(["--data", str(noisy_folder), "--out", str(out), "--iterations", "2",
                       "--checkpoint-every", "1", *TINY]) == 0
    first = torch.load(out, weights_only=True)
    assert first["training"]["step"] == 2 and first["metadata"]["train_hole"] == 9
    assert train_main(["--data", str(noisy_folder), "--out", str(out), "--iterations", "3",
                       "--resume", str(out), *TINY]) == 0
    # a longer run is a choice a resume may make, and it is said
    assert "other settings than its run had (a flag left out takes its default): " \
           "--iterations 2 -> --iterations 3" in caplog.text
    second = torch.load(out, weights_only=True)
    assert second["training"]["step"] == 3
    assert any(not torch.equal(first["state_dict"][k], second["state_dict"][k])
               for k in first["state_dict"])
    import atbsn_edge

    model = atbsn_edge.load_checkpoint(out)
    assert model.architecture.name == "atbsn" and model.default_hole == 3


def test_resume_from_a_checkpoint_of_another_run_is_one_line(noisy_folder, tmp_path, capsys,
                                                             caplog):
    trained = tmp_path / "atbsn.pt"
    assert train_main(["--data", str(noisy_folder), "--out", str(trained), "--iterations", "1",
                       *TINY]) == 0
    plain = tmp_path / "weights.pt"
    torch.save(torch.load(trained, weights_only=True)["state_dict"], plain)
    out = tmp_path / "student.pt"
    cases = [(distill_main, ["--teacher", str(trained), "--student", "c", "--data",
                             str(noisy_folder), "--out", str(out), "--resume", str(trained)],
              "its weights do not fit"),
             (train_main, ["--data", str(noisy_folder), "--out", str(out), "--resume", str(plain)],
              "is a plain state dict")]
    for main, argv, why in cases:
        capsys.readouterr()
        assert main([*argv, "--iterations", "2", *TINY]) == 2
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err and err.count("\n") == 1
        assert not out.exists()
        # no warning about its settings first: the run it holds is not one this continues
        assert "other settings than its run had" not in caplog.text


def test_resume_keeps_the_objective_and_needs_something_to_train(noisy_folder, tmp_path, capsys,
                                                                 caplog):
    out = tmp_path / "h5.pt"
    base = ["--data", str(noisy_folder), "--out", str(out), *TINY]
    assert train_main([*base, "--iterations", "1", "--train-hole", "5"]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    # --train-hole left out: its default (9) is not what the run trained with
    assert train_main([*base, "--iterations", "2", "--resume", str(out)]) == 2
    assert "give --train-hole 5 to continue it" in capsys.readouterr().err
    # nothing left to train: said, not an error (a resumable script reruns finished steps)
    assert train_main([*base, "--iterations", "1", "--train-hole", "5", "--resume", str(out)]) == 0
    assert "already the end of a run of --iterations 1" in caplog.text
    assert torch.load(out, weights_only=True)["training"]["step"] == 1
    assert out.read_bytes() == before  # not rewritten
    assert train_main([*base, "--iterations", "2", "--train-hole", "5", "--resume", str(out)]) == 0


def test_resume_says_which_settings_it_changes():
    """A flag left out takes its default: a resume that drops --time-limit or changes the
    learning rate goes on, and names each change (the run's end and schedule move)."""
    from dataclasses import asdict

    from atbsn_edge.training import TrainConfig, changed_settings

    run = TrainConfig(time_limit=1200.0, lr=3e-4, batch=8)
    stored = {"config": asdict(run), "teacher": "a.pt", "teacher_sha256": "1" * 64}
    assert changed_settings(stored, {"teacher": "a.pt", "teacher_sha256": "1" * 64}, run) == []
    resumed = TrainConfig(time_limit=0.0, lr=1e-4, batch=8, bf16=False, device="cuda")
    assert changed_settings(stored, {"teacher": "b.pt", "teacher_sha256": "2" * 64}, resumed) == [
        "--time-limit 1200 -> no --time-limit", "--lr 0.0003 -> --lr 0.0001",
        "bf16 autocast on -> bf16 autocast off (--no-bf16)",
        "the teacher a.pt -> --teacher b.pt (another checkpoint: the student learns from it "
        "from here on)"]
    assert changed_settings({}, {}, resumed) == []  # a checkpoint without the record


def test_resume_from_weights_alone_starts_a_fresh_optimizer(noisy_folder, tmp_path):
    """A bundled demo model holds weights and metadata, no training state: --resume loads the
    weights (README, benchmarks/train_demo_models.sh)."""
    from atbsn_edge.assets import DEMO_ATBSN

    out = tmp_path / "from_demo.pt"
    assert train_main(["--data", str(noisy_folder), "--out", str(out), "--iterations", "1",
                       "--resume", str(DEMO_ATBSN), "--lr", "1e-12", *TINY]) == 0
    demo = torch.load(DEMO_ATBSN, weights_only=True)["state_dict"]
    trained = torch.load(out, weights_only=True)
    assert trained["training"]["step"] == 1
    assert all(torch.allclose(trained["state_dict"][k], v, atol=1e-6) for k, v in demo.items())


def test_corrupt_image_is_skipped_with_a_warning(noisy_folder, tmp_path, caplog):
    (noisy_folder / "broken.png").write_bytes(b"not an image")
    assert train_main(["--data", str(noisy_folder), "--out", str(tmp_path / "c.pt"),
                       "--iterations", "1", *TINY]) == 0
    assert "broken.png" in caplog.text


@pytest.mark.parametrize("argv,message", [
    (["--crop", "224"], "no usable training picture"),            # larger than every image
    (["--crop", "96"], "at least 128"),
    (["--train-hole", "-1"], None),                              # argparse: exit 2
])
def test_bad_training_input_fails_before_work(noisy_folder, tmp_path, capsys, argv, message):
    out = tmp_path / "bad.pt"
    args = ["--data", str(noisy_folder), "--out", str(out), "--iterations", "1", *argv]
    try:
        code = train_main(args)
    except SystemExit as exc:  # argparse rejects the value itself
        code = exc.code
    assert code == 2 and not out.exists()
    if message:
        assert message in capsys.readouterr().err


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (width, height))
    assert writer.isOpened(), "OpenCV cannot write MJPG video here"
    for frame in frames:
        writer.write(frame[:, :, ::-1].astype(np.uint8))
    writer.release()


def test_training_takes_evenly_spaced_video_frames(tmp_path, caplog):
    from atbsn_edge.training import load_noisy_images

    frames = [textured_image(160, 192, seed=i) for i in range(5)]
    _write_video(tmp_path / "clip.avi", frames)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    pictures = load_noisy_images([str(tmp_path / "clip.avi"), str(tmp_path / "broken.mp4")],
                                 128, frames_per_video=3)
    assert "broken.mp4" in caplog.text
    assert len(pictures) == 3  # frames 0, 2 and 4 of 5
    for picture, index in zip(pictures, (0, 2, 4)):
        assert picture.shape == (160, 192, 3) and picture.dtype == np.float32
        errors = [float(np.abs(picture - frame).mean()) for frame in frames]
        assert int(np.argmin(errors)) == index and errors[index] < 10  # MJPG is lossy


def test_train_cli_on_a_video(tmp_path):
    _write_video(tmp_path / "clip.avi", [textured_image(160, 192, seed=i) for i in range(4)])
    out = tmp_path / "video.pt"
    assert train_main(["--data", str(tmp_path / "clip.avi"), "--out", str(out),
                       "--iterations", "1", "--frames-per-video", "2", *TINY]) == 0
    assert torch.load(out, weights_only=True)["training"]["step"] == 1


def test_time_limit_drives_the_schedule_and_stops_the_run(noisy_folder, tmp_path):
    from atbsn_edge.training import TrainConfig, cosine_lr

    config = TrainConfig(iterations=100, time_limit=60.0)
    assert config.progress(0, 0.0) == 0.0
    assert config.progress(5, 30.0) == pytest.approx(0.5)    # the clock leads
    assert config.progress(80, 30.0) == pytest.approx(0.8)   # the iterations lead
    assert config.progress(5, 90.0) == 1.0
    assert cosine_lr(0.0, 3e-4, 1e-6) == pytest.approx(3e-4)
    assert cosine_lr(0.5, 3e-4, 1e-6) == pytest.approx((3e-4 + 1e-6) / 2)
    assert cosine_lr(1.0, 3e-4, 1e-6) == pytest.approx(1e-6)
    # A warm-up rises linearly from lr_min, then the cosine runs over the rest of the progress.
    assert cosine_lr(0.0, 3e-4, 1e-6, warmup=0.2) == pytest.approx(1e-6)
    assert cosine_lr(0.1, 3e-4, 1e-6, warmup=0.2) == pytest.approx((3e-4 + 1e-6) / 2)
    assert cosine_lr(0.2, 3e-4, 1e-6, warmup=0.2) == pytest.approx(3e-4)
    assert cosine_lr(0.6, 3e-4, 1e-6, warmup=0.2) == pytest.approx((3e-4 + 1e-6) / 2)
    assert cosine_lr(1.0, 3e-4, 1e-6, warmup=0.2) == pytest.approx(1e-6)
    with pytest.raises(AtbsnError, match="warm-up"):
        TrainConfig(warmup=1.0).validate()

    out = tmp_path / "timed.pt"
    assert train_main(["--data", str(noisy_folder), "--out", str(out), "--iterations", "100000",
                       "--time-limit", "1.5", *TINY]) == 0
    training = torch.load(out, weights_only=True)["training"]
    assert 1 <= training["step"] < 100000 and training["elapsed"] >= 1.5
    # Resuming with the same limit does nothing more: the budget counts across resumes.
    assert train_main(["--data", str(noisy_folder), "--out", str(out), "--iterations", "100000",
                       "--time-limit", "1.5", "--resume", str(out), *TINY]) == 0
    assert torch.load(out, weights_only=True)["training"]["step"] == training["step"]


def test_a_batch_that_cannot_fit_in_memory_is_one_line(noisy_folder, tmp_path, capsys):
    """train --batch 20000 was killed by the kernel (no message, nothing to catch)."""
    from atbsn_edge.training import (MIN_BYTES_PER_CROP_PIXEL, TrainConfig, available_memory_bytes,
                                     check_batch_fits)

    out = tmp_path / "big.pt"
    assert train_main(["--data", str(noisy_folder), "--out", str(out), "--iterations", "1",
                       "--batch", "20000", "--crop", "128"]) == 2
    err = capsys.readouterr().err
    assert "--batch 20000 of 128 x 128 crops needs at least 1146.9 GB" in err, err
    assert "lower --batch or --crop" in err and err.count("\n") == 1 and not out.exists()
    config = TrainConfig(batch=4, crop=128)
    need = 4 * 128 * 128 * MIN_BYTES_PER_CROP_PIXEL
    check_batch_fits(config, available=need)                      # fits exactly: taken
    with pytest.raises(AtbsnError, match="needs at least 0.2 GB .* and 0.2 GB is available"):
        check_batch_fits(config, available=need - 1)
    check_batch_fits(TrainConfig(batch=20000, device="cuda"), available=1)  # a GPU's own memory
    assert available_memory_bytes() is None or available_memory_bytes() > 0


def test_empty_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert train_main(["--data", str(tmp_path / "empty"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "no image files found" in capsys.readouterr().err


def test_distill_student_from_teacher(noisy_folder, tmp_path, make_checkpoint, caplog):
    out = tmp_path / "student.pt"
    teacher = make_checkpoint("atbsn")
    args = ["--student", "a", "--holes", "1,3", "--data", str(noisy_folder), "--out", str(out),
            *TINY]
    assert distill_main(["--teacher", str(teacher), *args, "--iterations", "2"]) == 0
    payload = torch.load(out, weights_only=True)
    assert payload["architecture"] == "student_a"
    assert payload["metadata"]["teacher_holes"] == [1, 3]
    assert payload["metadata"]["teacher_sha256"] == hashlib.sha256(teacher.read_bytes()).hexdigest()
    # resumed from another teacher (one trained further, say): it goes on, and says so
    (tmp_path / "other").mkdir()
    other = write_checkpoint(tmp_path / "other", "atbsn", description="trained further")
    assert distill_main(["--teacher", str(other), *args, "--iterations", "3",
                         "--resume", str(out)]) == 0
    assert f"the teacher {teacher} -> --teacher {other} (another checkpoint" in caplog.text


def test_train_and_distill_end_by_naming_the_checkpoint_they_wrote(noisy_folder, tmp_path,
                                                                    make_checkpoint, caplog):
    """The last line names the checkpoint written, with its validation PSNR where the run
    validated (both commands used to finish without a word)."""
    import logging

    frame = str(noisy_folder / "frame0.png")
    teacher = tmp_path / "atbsn.pt"
    with caplog.at_level(logging.INFO):
        assert train_main(["--data", str(noisy_folder), "--out", str(teacher), "--iterations",
                           "2", "--validate-every", "1", "--val-noisy", frame, "--val-clean",
                           frame, *TINY]) == 0
    last = torch.load(teacher, weights_only=True)["training"]["history"][-1]
    assert caplog.records[-1].getMessage().startswith(
        f"wrote {teacher} (2 iterations; validation PSNR at iteration 2: "
        f"{last['val_psnr']:.3f} dB")
    caplog.clear()
    student = tmp_path / "student.pt"
    with caplog.at_level(logging.INFO):
        assert distill_main(["--teacher", str(teacher), "--student", "a", "--holes", "1,3",
                             "--data", str(noisy_folder), "--out", str(student),
                             "--iterations", "1", *TINY]) == 0
    assert caplog.records[-1].getMessage() == f"wrote {student} (1 iteration)"


def test_the_summary_of_a_run_names_its_final_and_best_validation(tmp_path):
    from atbsn_edge.models.checkpoint import save_checkpoint
    from atbsn_edge.training import run_summary

    from atbsn_edge.models.registry import get_architecture

    network = get_architecture("student_a").build()
    history = [{"step": 1, "loss": 0.2, "val_psnr": 30.0}, {"step": 2, "loss": 0.1},
               {"step": 3, "loss": 0.1, "val_psnr": 31.5}, {"step": 4, "loss": 0.1, "val_psnr": 31.25}]
    out = save_checkpoint(tmp_path / "run.pt", network, {}, {"step": 4, "history": history})
    assert run_summary(out) == (f"{out} (4 iterations; validation PSNR at iteration 4: "
                                "31.250 dB, best 31.500 dB at iteration 3)")
    out = save_checkpoint(tmp_path / "up.pt", network, {}, {"step": 4, "history": history[:3]})
    assert run_summary(out) == f"{out} (4 iterations; validation PSNR at iteration 3: 31.500 dB)"
    weights = save_checkpoint(tmp_path / "weights.pt", network, {})   # no training record
    assert run_summary(weights) == str(weights)
    # qat --output-offset after: the last score is the network with its offset, the earlier
    # ones are without it, and a better one among them is said to be so
    offset = {"step": 4, "val_psnr": 31.375, "output_offset": True}
    out = save_checkpoint(tmp_path / "qat.pt", network, {}, {"step": 4, "history": [*history, offset]})
    assert run_summary(out) == (f"{out} (4 iterations; validation PSNR at iteration 4: "
                                "31.375 dB, best 31.500 dB at iteration 3, without the output "
                                "offset)")


def test_multi_teacher_equals_per_hole_teachers(make_checkpoint):
    from atbsn_edge.distillation import MultiTeacher
    from atbsn_edge.models import load_checkpoint

    teacher = load_checkpoint(make_checkpoint("atbsn")).network
    teachers = MultiTeacher(teacher, [0, 1, 3, 5, 7, 9, 11])
    x = torch.from_numpy(textured_image(64, 96).transpose(2, 0, 1).copy())[None]
    for shared, naive in zip(teachers(x), teachers.naive(x)):
        assert float((shared - naive).abs().max()) < 1e-3


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun is not installed beside this Python")
def test_ddp_two_cpu_processes(noisy_folder, tmp_path):
    out = tmp_path / "ddp.pt"
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2",
                             "-m", "atbsn_edge.train", "--data", str(noisy_folder), "--out",
                             str(out), "--iterations", "2", *TINY],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rank 1 of 2" in result.stderr and "rank 0 of 2" in result.stderr
    assert torch.load(out, weights_only=True)["training"]["step"] == 2


def test_a_run_stopped_in_its_last_validation_is_scored_when_resumed(noisy_folder, tmp_path,
                                                                    monkeypatch, caplog):
    """Ctrl-C during the final validation saved the last iteration without its score, and a
    resume found nothing to train: the run's score was lost. The resume validates it now."""
    import atbsn_edge.training as training

    out = tmp_path / "stopped.pt"
    frame = str(noisy_folder / "frame0.png")
    argv = ["--data", str(noisy_folder), "--out", str(out), "--iterations", "2",
            "--validate-every", "100", "--val-noisy", frame, "--val-clean", frame, *TINY]
    monkeypatch.setattr(training, "validate_pairs", interrupted)
    assert train_main(argv) == 130
    stopped = torch.load(out, weights_only=True)["training"]
    assert stopped["step"] == 2 and not [r for r in stopped["history"] if "val_psnr" in r]
    monkeypatch.undo()
    with caplog.at_level(logging.INFO, logger="atbsn_edge.training"):
        assert train_main([*argv, "--resume", str(out)]) == 0
    history = torch.load(out, weights_only=True)["training"]["history"]
    assert history[-1]["step"] == 2 and history[-1]["val_psnr"] > 10
    assert "validating iteration 2, the end of the run, which has no score yet" in caplog.text
    before = out.read_bytes()
    assert train_main([*argv, "--resume", str(out)]) == 0  # scored: nothing more to do
    assert out.read_bytes() == before


def test_sigterm_saves_a_checkpoint_and_keeps_it_loadable(noisy_folder, tmp_path):
    """A stopped run leaves a complete checkpoint (written atomically) to resume from."""
    import signal
    import time

    out = tmp_path / "stopped.pt"
    frame = str(noisy_folder / "frame0.png")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    # stderr is a pipe, so no progress bar: every iteration's validation line shows the run
    process = subprocess.Popen([sys.executable, "-m", "atbsn_edge.train", "--data",
                                str(noisy_folder), "--out", str(out), "--iterations", "1000",
                                "--checkpoint-every", "1000", "--validate-every", "1",
                                "--val-noisy", frame, "--val-clean", frame, *TINY],
                               stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    seen = ""
    while time.time() < deadline:  # until a finished iteration is logged
        line = process.stderr.readline()
        if not line:
            break
        seen += line
        if re.search(r"iteration [1-9]\d*: validation PSNR", seen):
            break
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=120)
    err = seen + rest
    assert process.returncode != 0 and "saving a checkpoint" in err
    payload = torch.load(out, weights_only=True)
    assert 1 <= payload["training"]["step"] < 1000
    assert not list(tmp_path.glob(".stopped.pt.*"))  # no half-written temporary left


@pytest.mark.parametrize("native", [True, False])
def test_bf16_autocast_only_where_the_cpu_computes_bf16(monkeypatch, native):
    """bf16 is emulated (and several times slower than float32) on a CPU without avx512_bf16 /
    amx_bf16, so autocast is switched on by the CPU's flags, not by a capability of the build."""
    from atbsn_edge import training
    from atbsn_edge.profiling import machine

    flags = ["avx2", "fma"] + (["avx512_bf16"] if native else [])
    monkeypatch.setattr(machine, "cpu_info", lambda: {"flags_that_matter": flags})
    training.cpu_has_native_bf16.cache_clear()
    try:
        assert training.cpu_has_native_bf16() is native
        with training.autocast_context(torch.device("cpu"), True):
            assert torch.is_autocast_enabled("cpu") is (native and torch.backends.mkldnn.is_available())
        with training.autocast_context(torch.device("cpu"), False):
            assert not torch.is_autocast_enabled("cpu")
    finally:
        training.cpu_has_native_bf16.cache_clear()


def test_distillation_target_mean_is_the_l1_to_the_mean_of_the_holes(noisy_folder, tmp_path,
                                                                    make_checkpoint):
    from atbsn_edge.distill import build_parser
    from atbsn_edge.distillation import TARGETS, distillation_loss

    output = torch.zeros(1, 3, 4, 4)
    targets = [torch.full((1, 3, 4, 4), 1.0), torch.full((1, 3, 4, 4), 3.0),
               torch.full((1, 3, 4, 4), 8.0)]
    assert float(distillation_loss(output, targets)) == pytest.approx(12.0)  # 1 + 3 + 8
    assert float(distillation_loss(output, targets, "mean")) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="valid are holes, mean"):
        distillation_loss(output, targets, "median")
    choices = next(a.choices for a in build_parser()._actions if a.dest == "target")
    assert tuple(choices) == TARGETS
    out = tmp_path / "student.pt"
    assert distill_main(["--teacher", str(make_checkpoint("atbsn")), "--student", "a",
                         "--holes", "1,3", "--target", "mean", "--data", str(noisy_folder),
                         "--out", str(out), "--iterations", "2", *TINY]) == 0
    assert torch.load(out, weights_only=True)["metadata"]["distillation_target"] == "mean"


def test_training_curves_reads_the_history_of_a_freshly_trained_checkpoint(noisy_folder,
                                                                          tmp_path):
    """benchmarks/training_curves.py read only ``metadata["history"]``, which only the bundled
    models carry; a checkpoint of ``train`` keeps it in its training state (found 2026-12-07)."""
    clean = tmp_path / "clean.png"
    cv2.imwrite(str(clean), np.rint(textured_image(128, 128, 7)).astype(np.uint8))
    noisy = tmp_path / "noisy.png"
    cv2.imwrite(str(noisy), np.rint(textured_image(128, 128, 7) * 0.9 + 10).astype(np.uint8))
    out = tmp_path / "atbsn.pt"
    assert train_main(["--data", str(noisy_folder), "--out", str(out), "--iterations", "2",
                       "--validate-every", "1", "--val-noisy", str(noisy), "--val-clean",
                       str(clean), *TINY]) == 0
    history = torch.load(out, weights_only=True)["training"]["history"]
    printed = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "training_curves.py"),
                              str(out)], capture_output=True, text=True, timeout=120,
                             env=checkout_env())
    assert printed.returncode == 0, printed.stderr
    rows = [line for line in printed.stdout.splitlines() if re.match(r"\| \d+ \|", line)]
    assert [int(row.split("|")[1]) for row in rows] == [r["step"] for r in history
                                                       if "val_psnr" in r]
    assert rows and f"{history[-1]['val_psnr']:.3f} dB" in rows[-1]


# --- found by an audit of the training tools on 2026-12-07 -------------------------------------

def test_checkpoint_every_is_kept_between_the_logged_steps(noisy_folder, tmp_path, monkeypatch):
    """Checkpoints were written only where the loss is logged (every 10 steps)."""
    import atbsn_edge.training as training

    steps = []
    real = training.save_checkpoint

    def record(path, model, metadata, state):
        steps.append(state["step"])
        return real(path, model, metadata, state)

    monkeypatch.setattr(training, "save_checkpoint", record)
    assert train_main(["--data", str(noisy_folder), "--out", str(tmp_path / "c.pt"),
                       "--iterations", "7", "--checkpoint-every", "3", *TINY]) == 0
    assert steps == [3, 6, 7]


def test_a_finished_run_resumed_into_another_out_is_written_there(noisy_folder, tmp_path, caplog):
    """It said "wrote OUT" and wrote nothing."""
    first = tmp_path / "a.pt"
    assert train_main(["--data", str(noisy_folder), "--out", str(first), "--iterations", "2",
                       *TINY]) == 0
    copy = tmp_path / "copy.pt"
    assert train_main(["--data", str(noisy_folder), "--out", str(copy), "--iterations", "2",
                       "--resume", str(first), *TINY]) == 0
    assert "nothing to train" in caplog.text
    saved = torch.load(copy, weights_only=True)
    assert saved["training"]["step"] == 2
    original = torch.load(first, weights_only=True)["state_dict"]
    assert all(torch.equal(saved["state_dict"][k], v) for k, v in original.items())


def test_a_bundle_file_or_a_bundled_model_is_never_an_out(noisy_folder, tmp_path, capsys,
                                                          monkeypatch):
    import atbsn_edge.assets as assets

    # a copy stands in for the package's assets folder: a regression must not replace the real
    # demo model (it did, the one time this test ran without the check)
    monkeypatch.setattr(assets, "ASSETS", tmp_path / "assets")
    (tmp_path / "assets").mkdir()
    DEMO_ATBSN = Path(shutil.copy(assets.DEMO_ATBSN, tmp_path / "assets" / "demo_atbsn.pt"))
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "model.onnx").write_bytes(b"x")
    (bundle / "manifest.json").write_text(
        '{"schema": "atbsn-edge-bundle", "artifacts": {"onnx-fp32": {"entry": "model.onnx", '
        '"files": {"model.onnx": ""}}}}')
    for out, fragment in ((DEMO_ATBSN, "one of atbsn-edge's bundled files"),
                          (bundle / "model.onnx", f"is a file of the bundle {bundle}"),
                          (bundle / "manifest.json", f"is a file of the bundle {bundle}")):
        before = out.read_bytes()
        assert train_main(["--data", str(noisy_folder), "--out", str(out), "--iterations", "1",
                           "--resume", str(out), "--overwrite", *TINY]) == 2
        assert fragment in capsys.readouterr().err and out.read_bytes() == before


@pytest.mark.parametrize("environment, fragment", [
    ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 asks for a distributed run but MASTER_ADDR and "
                          "MASTER_PORT is not set"),
    ({"WORLD_SIZE": "x"}, "WORLD_SIZE='x' is not a whole number")])
def test_distributed_variables_without_torchrun_are_one_line(noisy_folder, tmp_path, capsys,
                                                            monkeypatch, environment, fragment):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    assert train_main(["--data", str(noisy_folder), "--out", str(tmp_path / "d.pt"),
                       "--iterations", "1", *TINY]) == 2
    assert fragment in capsys.readouterr().err


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_rank_started_by_hand_whose_partners_never_come_gives_up_in_words(monkeypatch):
    """WORLD_SIZE, MASTER_ADDR and MASTER_PORT set by hand, the other ranks never started:
    PyTorch's rendezvous waited 30 minutes deaf to Ctrl-C; ours says what it waits for and
    gives up with an error naming what to start."""
    import time

    from atbsn_edge.distributed import Distributed, rendezvous

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    started = time.monotonic()
    with pytest.raises(AtbsnError, match=r"WORLD_SIZE=2: only 1 of 2 processes joined in 1 s .*"
                                         r"\(this is RANK=0\); start every rank 0..1"):
        rendezvous(Distributed(rank=0, world_size=2), seconds=1, poll=0.05)
    with pytest.raises(AtbsnError, match="rank 0 did not answer in 1 s"):
        rendezvous(Distributed(rank=1, world_size=2), seconds=1, poll=0.05)
    assert time.monotonic() - started < 30
    # the variables themselves: one line each, not a traceback at import
    monkeypatch.setenv("ATBSN_RENDEZVOUS_SECONDS", "soon")
    with pytest.raises(AtbsnError, match="ATBSN_RENDEZVOUS_SECONDS='soon': expected a number"):
        rendezvous(Distributed(rank=0, world_size=2))
    monkeypatch.delenv("ATBSN_RENDEZVOUS_SECONDS")
    monkeypatch.setenv("MASTER_PORT", "http")
    with pytest.raises(AtbsnError, match="MASTER_PORT='http' is not a port number"):
        rendezvous(Distributed(rank=0, world_size=2), seconds=1)


def test_a_rank_given_twice_is_refused_not_counted(monkeypatch):
    """Joins were counted, not ranks: a restarted rank (or two processes with one RANK)
    filled the place of a missing one, and the others went on to hang in gloo's connect."""
    import threading
    import time

    from atbsn_edge.distributed import Distributed, rendezvous

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    errors: dict[int, str] = {}

    def rank(number: int) -> None:
        try:
            rendezvous(Distributed(rank=number, world_size=3), seconds=4, poll=0.05)
        except AtbsnError as exc:
            errors[number] = str(exc)

    threads = [threading.Thread(target=rank, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
        time.sleep(0.5)
    with pytest.raises(AtbsnError, match="RANK=1 joined the run at .* twice"):
        rendezvous(Distributed(rank=1, world_size=3), seconds=4, poll=0.05)
    for t in threads:
        t.join(timeout=30)
    assert "only 2 of 3 processes joined" in errors[0], errors
    # rank 1 gives up too: by its own clock, or when rank 0, which gave up first, went away
    assert "only 2 of 3" in errors[1] or "went away" in errors[1], errors


def test_a_rank_that_stops_waiting_leaves_the_count_and_may_start_again(monkeypatch):
    """A rank that joined and then stopped waiting (Ctrl-C, SIGTERM, its own clock) still
    counted: the others went on to meet it in gloo and hung there, and the same rank started
    again was refused as a twin. It now leaves the count, and the run meets when it is back."""
    import threading
    import time

    from atbsn_edge.distributed import Distributed, port_open, rendezvous

    port = _free_port()
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    stores: dict[int, object] = {}
    errors: dict[int, BaseException] = {}

    def rank(number: int) -> None:
        try:
            stores[number] = rendezvous(Distributed(rank=number, world_size=3), seconds=30,
                                        poll=0.05)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertions below
            errors[number] = exc

    def start(number: int) -> threading.Thread:
        thread = threading.Thread(target=rank, args=(number,))
        thread.start()
        return thread

    threads = [start(0)]
    deadline = time.monotonic() + 20
    while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(AtbsnError, match="only 2 of 3 processes joined in 2 s"):
        rendezvous(Distributed(rank=1, world_size=3), seconds=2, poll=0.05)
    threads.append(start(2))
    time.sleep(1.0)  # twenty polls: ranks 0 and 2 must not take the rank that left for a member
    assert not stores and not errors, (stores, errors)
    threads.append(start(1))
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sorted(stores) == [0, 1, 2]


def test_ranks_started_by_hand_train_together(noisy_folder, tmp_path):
    """The same rendezvous, with both ranks there: they meet and train (no torchrun)."""
    port = str(_free_port())
    out = tmp_path / "hand.pt"
    runs = [subprocess.Popen([sys.executable, "-m", "atbsn_edge.train", "--data", str(noisy_folder),
                              "--out", str(out), "--iterations", "2", *TINY],
                             env=checkout_env(WORLD_SIZE="2", RANK=str(rank),
                                              LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                                              MASTER_PORT=port, ATBSN_RENDEZVOUS_SECONDS="120"),
                             stderr=subprocess.PIPE, text=True, cwd=ROOT)
            for rank in (1, 0)]  # the rank that serves last: the other waits for it
    errors = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    assert "rank 1 of 2 on cpu" in errors[0] and "rank 0 of 2 on cpu" in errors[1]
    assert torch.load(out, weights_only=True)["training"]["step"] == 2


def test_a_validation_that_passes_the_time_limit_ends_the_run(noisy_folder, tmp_path,
                                                              monkeypatch):
    """The clock was not read again after a validation: one more iteration and validation
    followed one that had passed --time-limit."""
    import time

    import atbsn_edge.training as training

    real = training.validate_pairs

    def slow_validation(*args, **kwargs):
        time.sleep(3.0)   # past the 2 s limit on its own
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "validate_pairs", slow_validation)
    frame = str(noisy_folder / "frame0.png")
    out = tmp_path / "t.pt"
    assert train_main(["--data", str(noisy_folder), "--out", str(out), "--time-limit", "2",
                       "--validate-every", "1", "--val-noisy", frame, "--val-clean", frame,
                       *TINY]) == 0
    history = torch.load(out, weights_only=True)["training"]["history"]
    assert [r["step"] for r in history if "val_psnr" in r] == [1]


def test_validation_frames_may_share_a_clean_reference(noisy_folder, tmp_path, caplog):
    """`--val-noisy a b --val-clean c c` counted one reference and was refused."""
    import logging

    frames = [str(noisy_folder / "frame0.png"), str(noisy_folder / "frame1.png")]
    with caplog.at_level(logging.INFO):
        assert train_main(["--data", str(noisy_folder), "--out", str(tmp_path / "v.pt"),
                           "--iterations", "1", "--val-noisy", *frames, "--val-clean",
                           frames[0], frames[0], *TINY]) == 0
    assert "2 validation pairs" in caplog.text


def test_a_resume_whose_optimizer_is_another_runs_is_one_line(noisy_folder, tmp_path, capsys):
    """`distill --resume` of a qat checkpoint ended in PyTorch's ValueError: here the saved
    optimizer state is given another parameter grouping, as another command's would be."""
    first = tmp_path / "a.pt"
    assert train_main(["--data", str(noisy_folder), "--out", str(first), "--iterations", "1",
                       *TINY]) == 0
    payload = torch.load(first, weights_only=True)
    groups = payload["training"]["optimizer"]["param_groups"]
    groups[0]["params"] = groups[0]["params"][:-1]
    torch.save(payload, first)
    assert train_main(["--data", str(noisy_folder), "--out", str(first), "--iterations", "2",
                       "--resume", str(first), *TINY]) == 2
    err = capsys.readouterr().err
    assert f"--resume {first}: its optimizer state does not fit this run" in err
    assert "Traceback" not in err
