"""Unknown, damaged or mismatched checkpoints give errors that name what was tried."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import atbsn_edge  # noqa: E402
from atbsn_edge.errors import CheckpointError  # noqa: E402
from reference_weights import reference_state_dict  # noqa: E402


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        atbsn_edge.load_checkpoint(tmp_path / "nope.pt")


def test_truncated_file(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(reference_state_dict("student_a"), good)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="damaged, truncated or not a PyTorch file"):
        atbsn_edge.load_checkpoint(bad)


@pytest.mark.parametrize("head", [b"", b"\x89PNG\r\n\x1a\n"], ids=["random", "png"])
def test_foreign_bytes_are_damaged_without_pytorchs_unsafe_advice(tmp_path, head):
    bad = tmp_path / "rand.pt"
    bad.write_bytes(head + bytes(range(256)) * 8)
    with pytest.raises(CheckpointError) as caught:
        atbsn_edge.load_checkpoint(bad)
    message = str(caught.value)
    assert "damaged, truncated or not a PyTorch file" in message and "\n" not in message
    assert "weights_only" not in message and "arbitrary code" not in message


def test_unknown_layout_names_layouts_and_keys(tmp_path):
    state = reference_state_dict("student_a")
    state.pop("dec1.conv.conv.weight")
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "odd.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        atbsn_edge.load_checkpoint(path)
    message = str(info.value)
    for name in ("atbsn", "student_a", "student_b", "student_c"):
        assert f"{name}:" in message
    assert "dec1.conv.conv.weight" in message and "extra.weight" in message


def test_wrong_shape_is_reported(tmp_path):
    state = reference_state_dict("student_a")
    state["enc1.conv.conv.weight"] = torch.zeros(48, 3, 5, 5)
    path = tmp_path / "shape.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="wrong shapes.*enc1.conv.conv.weight"):
        atbsn_edge.load_checkpoint(path)


def test_nan_weights_are_rejected(tmp_path):
    state = reference_state_dict("student_a")
    state["enc2.conv.conv.weight"][0, 0, 0, 0] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="NaN"):
        atbsn_edge.load_checkpoint(path)


def test_teacher_part_of_a_student_file(tmp_path):
    path = tmp_path / "a.pt"
    torch.save(reference_state_dict("student_a"), path)
    with pytest.raises(CheckpointError, match="no teacher"):
        atbsn_edge.load_checkpoint(path, part="teacher")
    with pytest.raises(CheckpointError, match="part must be one of"):
        atbsn_edge.load_checkpoint(path, part="teachers")


@pytest.mark.parametrize("layout", ["authors", "project"])
def test_student_part_of_an_atbsn_file(tmp_path, layout):
    """Asked for a student, an AT-BSN-only file loaded its AT-BSN as if it were one."""
    from atbsn_edge.models.checkpoint import save_checkpoint
    from atbsn_edge.models.registry import get_architecture

    path = tmp_path / "atbsn.pt"
    if layout == "authors":
        torch.save(reference_state_dict("atbsn"), path)
    else:
        save_checkpoint(path, get_architecture("atbsn").build(), {})
    with pytest.raises(CheckpointError, match="holds only atbsn; it has no student part"):
        atbsn_edge.load_checkpoint(path, part="student")
    assert atbsn_edge.load_checkpoint(path).architecture.name == "atbsn"
    assert atbsn_edge.load_checkpoint(path, part="teacher").architecture.name == "atbsn"


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="not a dict"):
        atbsn_edge.load_checkpoint(path)


def test_hole_for_student_is_rejected(tmp_path):
    path = tmp_path / "a.pt"
    torch.save(reference_state_dict("student_a"), path)
    model = atbsn_edge.load_checkpoint(path)
    with pytest.raises(ValueError, match="no tunable blind spot"):
        model(torch.zeros(1, 3, 8, 8), hole_size=3)


@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (2, 3, 33, 70), (1, 3, 1, 1)])
def test_any_input_size_and_batch(tmp_path, shape):
    path = tmp_path / "a.pt"
    torch.save(reference_state_dict("student_a"), path)
    model = atbsn_edge.load_checkpoint(path)
    with torch.no_grad():
        out = model(torch.rand(shape) * 255)
    assert tuple(out.shape) == shape and torch.isfinite(out).all()


def test_hole_sizes_stop_at_the_limit():
    from atbsn_edge.holes import MAX_HOLE
    from atbsn_edge.models import hole_to_shift

    assert MAX_HOLE == 63 and hole_to_shift(63) == 32 and hole_to_shift(0) == 0
    with pytest.raises(ValueError, match="over 63"):
        hole_to_shift(64)
