"""``python -m atbsn_edge.adapt``: tiny end-to-end runs, refusals before any work, the pool
sampler and the no-reference report's noise estimate."""
from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from atbsn_edge.adapt import DEFAULTS, build_parser  # noqa: E402
from atbsn_edge.adapt import main as adapt_main  # noqa: E402
from atbsn_edge.synthetic import camera_noise  # noqa: E402
from conftest import textured_image  # noqa: E402

TINY = ["--batch", "1", "--crop", "128", "--region", "128", "--threads", "1",
        "--report-frames", "2", "--report-crop", "128", "--holes", "1,3"]


@pytest.fixture
def camera_folder(tmp_path):
    """Three 160 x 192 frames of one synthetic camera (Bayer, Poisson-Gaussian, demosaiced)."""
    folder = tmp_path / "camera"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        noisy = camera_noise(textured_image(160, 192, seed=i), gain=2.0, read_noise=2.0, rng=rng)
        cv2.imwrite(str(folder / f"frame{i}.png"), noisy[:, :, ::-1].astype(np.uint8))
    return folder


@pytest.fixture
def models(make_checkpoint):
    return ["--teacher", str(make_checkpoint("atbsn", train_hole=9, infer_hole=3)),
            "--student", str(make_checkpoint("student_c", strength=0.7))]


def _exit_code(argv: list[str]) -> int:
    try:
        return adapt_main(argv)
    except SystemExit as exc:  # argparse's own refusals
        return int(exc.code)


def test_end_to_end_writes_loadable_checkpoints_and_reports(camera_folder, models, tmp_path,
                                                            capsys, caplog):
    import atbsn_edge

    out, teacher_out = tmp_path / "adapted.pt", tmp_path / "teacher.pt"
    assert adapt_main(["--data", str(camera_folder), "--out", str(out), "--teacher-out",
                       str(teacher_out), "--time-limit", "0", "--teacher-iterations", "1",
                       "--student-iterations", "2", "--pool-regions", "2", *models, *TINY]) == 0
    student = atbsn_edge.load_checkpoint(out)
    assert student.architecture.name == "student_c"
    assert student.metadata["strength"] == 0.7      # denoise blends as with the given student
    adaptation = student.metadata["adaptation"]
    assert adaptation["iterations"] == {"teacher": 1, "student": 2}
    assert adaptation["pictures"] == 3 and adaptation["pool_regions"] == 2
    assert adaptation["sources"] == [str(camera_folder)]
    assert set(adaptation["seconds"]) == {"total", "teacher", "targets", "student"}
    check = adaptation["teacher_check"]
    assert check["crops"] == 2 and check["hole"] == 9        # 2 batches of --batch 1
    assert check["kept"] == (check["loss_after"] < check["loss_before"])
    assert student.metadata["adapted_from"]["student"]["architecture"] == "student_c"
    report = adaptation["report"]
    assert report["before"]["frames"] == 2 and report["after"]["frames"] == 2
    teacher = atbsn_edge.load_checkpoint(teacher_out)
    assert teacher.architecture.name == "atbsn" and teacher.default_hole == 3
    assert teacher.metadata["train_hole"] == 9
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| before") or
            line.startswith("| after")]
    assert any(r.startswith("| before: student_c.pt") for r in rows)
    assert any(r.startswith("| after: adapted.pt") for r in rows)
    for row in rows:  # every cell after the label is a number
        cells = [c.strip() for c in row.strip("|").split("|")][1:]
        assert all(np.isfinite(float(c)) for c in cells)
    assert not list(tmp_path.glob(".adapted.pt.adapt-*"))  # scratch folder removed
    # on a CPU the user is told what adapt measured there, before the run
    assert "has not been shown to improve" in caplog.text and str(out) in caplog.text


def test_a_fine_tune_that_raises_the_teacher_loss_is_undone(camera_folder, models, tmp_path,
                                                            caplog):
    """A learning rate of 0.03 wrecks the teacher: its blind-spot loss on the fixed crops rises,
    so the given weights come back and the student is distilled from them (the log says so
    twice; its second line used to say "from the adapted teacher")."""
    import logging

    import atbsn_edge

    out, teacher_out = tmp_path / "adapted.pt", tmp_path / "teacher.pt"
    with caplog.at_level(logging.INFO, logger="atbsn_edge.adaptation"):
        assert adapt_main(["--data", str(camera_folder), "--out", str(out), "--teacher-out",
                           str(teacher_out), "--time-limit", "0", "--teacher-iterations", "2",
                           "--teacher-lr", "0.03", "--student-iterations", "1",
                           "--pool-regions", "1", *models, *TINY]) == 0
    check = torch.load(out, weights_only=True)["metadata"]["adaptation"]["teacher_check"]
    assert not check["kept"] and check["loss_after"] > check["loss_before"]
    messages = [r.getMessage() for r in caplog.records if r.name == "atbsn_edge.adaptation"]
    assert any("distilling from the given teacher instead" in m for m in messages)
    assert ("distilling the student from the given teacher, whose fine-tune was undone "
            "(pool targets)") in messages
    assert not any("adapted teacher" in m for m in messages)
    given = atbsn_edge.load_checkpoint(models[1]).network.state_dict()
    written = atbsn_edge.load_checkpoint(teacher_out).network.state_dict()
    assert set(given) == set(written)
    for name, tensor in given.items():
        assert torch.equal(tensor, written[name]), name


def test_time_limit_splits_the_clock_between_teacher_and_student(camera_folder, models,
                                                                 tmp_path):
    out = tmp_path / "timed.pt"
    assert adapt_main(["--data", str(camera_folder), "--out", str(out), "--time-limit", "4",
                       "--teacher-share", "0.4", "--pool-regions", "2", *models, *TINY]) == 0
    adaptation = torch.load(out, weights_only=True)["metadata"]["adaptation"]
    assert adaptation["iterations"]["teacher"] >= 1 and adaptation["iterations"]["student"] >= 1
    seconds = adaptation["seconds"]
    assert seconds["teacher"] >= 1.6 - 1e-6          # 0.4 of 4 s
    assert seconds["student"] + seconds["targets"] + seconds["teacher"] >= 4 - 0.5
    assert seconds["total"] < 4 + 15                 # one iteration past the clock at most


def test_online_targets_and_no_teacher_iterations_skip_the_teacher(camera_folder, models, tmp_path):
    out = tmp_path / "online.pt"
    assert adapt_main(["--data", str(camera_folder), "--out", str(out), "--time-limit", "0",
                       "--student-iterations", "1", "--targets", "online",
                       "--distill-target", "mean", *models, *TINY]) == 0
    metadata = torch.load(out, weights_only=True)["metadata"]
    adaptation = metadata["adaptation"]
    assert metadata["distillation_target"] == adaptation["config"]["distill_target"] == "mean"
    assert adaptation["iterations"] == {"teacher": 0, "student": 1}
    assert adaptation["pool_regions"] == 0


def test_refuses_images_smaller_than_128(tmp_path, models, capsys):
    folder = tmp_path / "small"
    folder.mkdir()
    cv2.imwrite(str(folder / "ok.png"), textured_image(160, 160).astype(np.uint8))
    cv2.imwrite(str(folder / "thumb.png"), textured_image(100, 120).astype(np.uint8))
    out = tmp_path / "x.pt"
    assert adapt_main(["--data", str(folder), "--out", str(out), *models, *TINY]) == 2
    err = capsys.readouterr().err
    assert "thumb.png (120x100)" in err and "128" in err and not out.exists()


def test_refuses_missing_files(tmp_path, models, capsys):
    out = tmp_path / "x.pt"
    assert adapt_main(["--data", str(tmp_path / "nowhere.png"), "--out", str(out), *models]) == 2
    assert "no image files found for" in capsys.readouterr().err and not out.exists()
    assert adapt_main(["--data", str(tmp_path), "--out", str(out),
                       "--student", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_refuses_an_out_that_is_an_input(camera_folder, models, tmp_path, capsys):
    student = models[3]
    before = open(student, "rb").read()
    for flags, named in ((["--out", student], "--out"),
                         (["--out", student, "--overwrite"], "--out"),
                         (["--out", str(tmp_path / "a.pt"), "--teacher-out", models[1]],
                          "--teacher-out")):
        assert adapt_main(["--data", str(camera_folder), *flags, *models, *TINY]) == 2
        err = capsys.readouterr().err
        assert f"{named} {flags[-1] if named == '--teacher-out' else student} is an input" in err
    assert open(student, "rb").read() == before
    same = str(tmp_path / "same.pt")
    assert adapt_main(["--data", str(camera_folder), "--out", same, "--teacher-out", same,
                       *models, *TINY]) == 2
    assert "same file" in capsys.readouterr().err


def test_refuses_an_existing_out_without_overwrite(camera_folder, models, tmp_path, capsys):
    out = tmp_path / "exists.pt"
    out.write_bytes(b"keep me")
    assert adapt_main(["--data", str(camera_folder), "--out", str(out), *models, *TINY]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"keep me"


def test_refuses_swapped_models_and_bad_values(camera_folder, make_checkpoint, tmp_path, capsys):
    teacher, student = str(make_checkpoint("atbsn")), str(make_checkpoint("student_c"))
    out = str(tmp_path / "x.pt")
    assert adapt_main(["--data", str(camera_folder), "--out", out, "--teacher", student,
                       "--student", student]) == 2
    assert "is student_c, not a teacher: give an AT-BSN checkpoint" in capsys.readouterr().err
    assert adapt_main(["--data", str(camera_folder), "--out", out, "--teacher", teacher,
                       "--student", teacher]) == 2
    assert "is atbsn, not a student: give a student checkpoint, A, B or C" in capsys.readouterr().err
    assert adapt_main(["--data", str(camera_folder), "--out", out, "--time-limit", "0"]) == 2
    assert "--student-iterations" in capsys.readouterr().err
    assert adapt_main(["--data", str(camera_folder), "--out", out, "--crop", "96"]) == 2
    assert "at least 128" in capsys.readouterr().err
    assert _exit_code(["--data", str(camera_folder), "--out", out, "--teacher-share", "1"]) == 2


def test_parser_defaults_match_the_config():
    from atbsn_edge.adaptation import TARGETS, AdaptConfig
    from atbsn_edge.adapt import DISTILL_TARGETS as CLI_DISTILL_TARGETS
    from atbsn_edge.adapt import TARGETS as CLI_TARGETS
    from atbsn_edge.distillation import TARGETS as DISTILL_TARGETS

    config, d = AdaptConfig(), DEFAULTS
    assert TARGETS == CLI_TARGETS and DISTILL_TARGETS == CLI_DISTILL_TARGETS
    for name in vars(d):
        assert getattr(config, name) == getattr(d, name), name
    args = build_parser().parse_args(["--data", "x", "--out", "y"])
    assert isinstance(args, argparse.Namespace) and args.teacher_share == config.teacher_share


def test_pool_sampler_transforms_input_and_targets_alike():
    from atbsn_edge.adaptation_pool import PoolSampler, pooled_loss

    inputs = [torch.rand(3, 160, 192) * 255 for _ in range(2)]
    targets = [torch.cat((x * 0.5, x + 1)).to(torch.float16) for x in inputs]
    sampler = PoolSampler(inputs, targets, crop=128, seed=0)
    batch = sampler.sample(6)
    assert batch.shape == (6, 9, 128, 128) and batch.dtype == torch.float32
    noisy = batch[:, :3]
    assert torch.allclose(batch[:, 3:6], (noisy * 0.5), atol=0.2)
    assert torch.allclose(batch[:, 6:9], noisy + 1, atol=0.2)

    class Half(torch.nn.Module):
        def forward(self, x):
            return x * 0.5

    loss = pooled_loss(Half(), batch)  # exact on the first target, 0.5 x + 1 off the second
    expected = float((noisy * 0.5 + 1).abs().mean())
    assert float(loss) == pytest.approx(expected, rel=1e-2)
    loss = pooled_loss(Half(), batch, "mean")  # the targets' mean is 0.75 x + 0.5
    expected = float((noisy * 0.25 + 0.5).abs().mean())
    assert float(loss) == pytest.approx(expected, rel=1e-2)


def test_noise_sigma_reads_white_noise_and_the_denoised_image_lower():
    from atbsn_edge.adaptation_report import noise_sigma

    rng = np.random.default_rng(0)
    flat = np.full((256, 256, 3), 120, np.float32)
    assert noise_sigma(flat) == pytest.approx(0.0, abs=1e-6)
    noisy = flat + rng.normal(0, 10, flat.shape).astype(np.float32)
    assert noise_sigma(noisy) == pytest.approx(10.0, rel=0.05)
    smoothed = cv2.GaussianBlur(noisy, (5, 5), 1.5)
    assert noise_sigma(smoothed) < 0.3 * noise_sigma(noisy)


def test_interrupted_run_writes_nothing(camera_folder, models, tmp_path, monkeypatch):
    import atbsn_edge.adaptation as adaptation

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(adaptation, "optimise", stop)
    out = tmp_path / "stopped.pt"
    assert adapt_main(["--data", str(camera_folder), "--out", str(out), "--time-limit", "0",
                       "--student-iterations", "1", "--pool-regions", "1", *models, *TINY]) == 130
    assert not out.exists() and not list(tmp_path.glob(".stopped.pt.*"))
