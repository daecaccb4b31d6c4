"""OpenVINO's model cache folder: where it is, when it is off, and how it is pruned (no
OpenVINO needed; the runtime's use of it is tested in test_throughput.py)."""
from __future__ import annotations

import os

from atbsn_edge.runtimes.openvino_cache import DISABLE_VARIABLE, compile_cache_dir, prune


def test_cache_folder_is_under_the_toolkits_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ATBSN_EDGE_CACHE", str(tmp_path / "c"))
    monkeypatch.delenv(DISABLE_VARIABLE, raising=False)
    folder = compile_cache_dir()
    assert folder == tmp_path / "c" / "openvino" and folder.is_dir()


def test_properties_the_cache_does_not_key_on_name_a_subfolder(tmp_path, monkeypatch):
    monkeypatch.setenv("ATBSN_EDGE_CACHE", str(tmp_path / "c"))
    monkeypatch.delenv(DISABLE_VARIABLE, raising=False)
    folder = compile_cache_dir(unkeyed={"SNIPPETS_MODE": "DISABLE"})
    assert folder == tmp_path / "c" / "openvino" / "SNIPPETS_MODE=DISABLE" and folder.is_dir()
    assert compile_cache_dir(unkeyed={}) == tmp_path / "c" / "openvino"


def test_cache_is_off_by_variable_or_where_it_cannot_be_created(tmp_path, monkeypatch):
    monkeypatch.setenv("ATBSN_EDGE_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv(DISABLE_VARIABLE, "0")
    assert compile_cache_dir() is None and not (tmp_path / "c").exists()
    monkeypatch.delenv(DISABLE_VARIABLE)
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("ATBSN_EDGE_CACHE", str(tmp_path / "file"))  # a file, not a folder
    assert compile_cache_dir() is None


def test_prune_deletes_the_oldest_files_down_to_the_limit(tmp_path):
    for age, name in enumerate(["new", "mid", "old", "oldest"]):
        path = tmp_path / f"{name}.blob"
        path.write_bytes(b"x" * 100)
        os.utime(path, (1_000_000 - age * 10, 1_000_000 - age * 10))
    assert prune(tmp_path, 250) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mid.blob", "new.blob"]
    assert prune(tmp_path, 250) == 0
