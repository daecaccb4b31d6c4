"""Our networks, loaded through ``load_checkpoint``, reproduce the authors' code's outputs."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import atbsn_edge  # noqa: E402
from reference_weights import golden, reference_state_dict  # noqa: E402

REL_L2 = 1e-4  # float32 reimplementations agree to ~1e-5; the bar is 1e-4
GOLDEN = golden()


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def run(model, hole=None) -> np.ndarray:
    with torch.no_grad():
        x = torch.from_numpy(GOLDEN["input"])
        return model(x, hole_size=hole).numpy() if hole is not None else model(x).numpy()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The four reference layouts saved with plain ``torch.save(state_dict)``."""
    folder = tmp_path_factory.mktemp("reference")
    paths = {}
    for layout in ("atbsn", "atbsn_d", "student_a", "student_b"):
        paths[layout] = folder / f"{layout}.pth"
        torch.save(reference_state_dict(layout), paths[layout])
    return paths


@pytest.mark.parametrize("hole", [0, 1, 3, 5, 9])
def test_atbsn_matches_reference(saved, hole):
    model = atbsn_edge.load_checkpoint(saved["atbsn"])
    assert model.architecture.name == "atbsn" and not model.training
    assert rel_l2(run(model, hole), GOLDEN[f"atbsn_hole{hole}"]) < REL_L2


@pytest.mark.parametrize("layout", ["student_a", "student_b"])
def test_students_match_reference(saved, layout):
    model = atbsn_edge.load_checkpoint(saved[layout])
    assert model.architecture.name == layout
    assert rel_l2(run(model), GOLDEN[layout]) < REL_L2


def test_distillation_checkpoint_student_by_default(saved):
    model = atbsn_edge.load_checkpoint(saved["atbsn_d"])
    assert model.architecture.name == "student_c"
    assert rel_l2(run(model), GOLDEN["atbsn_d_student"]) < REL_L2


@pytest.mark.parametrize("hole", [0, 1, 3, 5, 7, 9, 11])
def test_distillation_checkpoint_teacher(saved, hole):
    model = atbsn_edge.load_checkpoint(saved["atbsn_d"], part="teacher")
    assert model.architecture.name == "atbsn"
    assert rel_l2(run(model, hole), GOLDEN[f"atbsn_d_teacher_hole{hole}"]) < REL_L2


def test_module_prefix_and_wrapped_layouts(tmp_path):
    state = reference_state_dict("student_a")
    prefixed = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, prefixed)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"epoch": 3, "model_weight": {"denoiser": state}}, wrapped)
    for path in (prefixed, wrapped):
        assert rel_l2(run(atbsn_edge.load_checkpoint(path)), GOLDEN["student_a"]) < REL_L2


def test_own_format_round_trip_keeps_outputs_and_metadata(saved, tmp_path):
    from atbsn_edge.models import save_checkpoint

    model = atbsn_edge.load_checkpoint(saved["atbsn"])
    path = save_checkpoint(tmp_path / "own.pt", model,
                           {"train_hole": 9, "infer_hole": 5, "description": "round trip"})
    again = atbsn_edge.load_checkpoint(path)
    assert again.metadata["infer_hole"] == 5 and again.metadata["description"] == "round trip"
    assert again.default_hole == 5
    assert rel_l2(run(again), GOLDEN["atbsn_hole5"]) < REL_L2
