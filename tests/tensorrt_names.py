"""Static check that code uses TensorRT Python names only where every supported version has
them, or behind a guard. Used by ``tests/test_tensorrt_api_names.py``; torch-free, standard
library plus numpy only.

The name lists (``tests/data/tensorrt_names/tensorrt-<version>.txt``) are extracted from the
real bindings by ``benchmarks/extract_tensorrt_names.py``. They are flat: ``FP16`` present means
some binding is called ``FP16``. A name is **version-dependent** when it is in at least one list
and missing from at least one; only those are checked (a name no list has, ``execute_async_v2``
say, is reported by nobody: it is missing from every supported version, which the tests of the
module itself and a first run on a device catch, and an unknown name is more often the module's
own attribute). Enum members that a flat list cannot show as removed because another enum still
has a member of that name (``BuilderFlag.INT8`` vs ``DataType.INT8``) are in
``QUALIFIED_REMOVALS``.

Guards (the convention the TensorRT modules follow):

* ``getattr(obj, "NAME", default)`` or ``hasattr(obj, "NAME")``: the name as a string argument;
  a two-argument ``getattr(obj, "NAME")`` is a plain use (it raises where the name is missing);
* ``obj.NAME`` inside an ``if``/conditional expression/``while`` whose test contains
  ``hasattr(..., "NAME")`` or ``getattr(..., "NAME", ...)``, after such a test in an ``and``
  chain, or inside a ``try:`` body whose handlers catch ``AttributeError``;
* the name listed in a module-level ``VERSION_GUARDED_NAMES = {"NAME", ...}`` (set, frozenset,
  list or tuple of string literals): a promise that every use sits behind a version test
  (``if trt_major < 11:``), which this check cannot verify.

Not considered TensorRT names: dunder and ``_private`` names, ``self.X`` / ``cls.X`` (the
module's own attributes), names of Python builtins, common standard-library objects and numpy
(``GENERIC_NAMES``), and names a module lists in a module-level ``NOT_TENSORRT_NAMES = {...}``
(its own attributes that happen to share a word with some TensorRT binding).
"""
from __future__ import annotations

import ast
import builtins
import io
import json
import logging
import os
import pathlib
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data" / "tensorrt_names"

# Members of an enum that a version lacks although another enum keeps a member of the same
# name, so the flat lists cannot show it. Qualified name -> first major version without it.
# Evidence (tensorrt.so .rodata, benchmarks/extract_tensorrt_names.py): in 10.x the BuilderFlag
# value names run FP16, BF16, DEBUG, GPU_FALLBACK, ... with INT8 tail-merged into "UINT8"; in
# 11.4 the run starts at DEBUG, GPU_FALLBACK (the weakly-typed precision flags are gone, 11.0
# release notes), and BF16/FP8/INT4/INT8 remain only as DataType/PluginFieldType members.
QUALIFIED_REMOVALS: dict[str, int] = {
    "BuilderFlag.FP16": 11,
    "BuilderFlag.INT8": 11,
    "BuilderFlag.BF16": 11,
    "BuilderFlag.FP8": 11,
    "BuilderFlag.INT4": 11,
}

_GENERIC_SOURCES = (builtins, str, bytes, bytearray, dict, list, set, frozenset, tuple, int,
                    float, complex, object, type, BaseException, memoryview, range, slice,
                    io.BufferedReader, io.BufferedWriter, io.TextIOWrapper, io.BytesIO, os,
                    os.path, pathlib.Path, json, subprocess, subprocess.Popen,
                    subprocess.CompletedProcess, shutil, time, logging, logging.Logger, re,
                    re.Match, np, np.ndarray, np.dtype, np.random)
# Everyday words that are only TensorRT argument or property names in some versions
# ("precision": ILayer.precision is gone in 11, but in this project the word is a bundle's
# fp32/fp16/int8; per-layer precision is not how the builder sets precision).
_GENERIC_WORDS = {
    "context", "contexts", "names", "limit", "offset", "mask", "text", "query", "ret", "expr",
    "cuda", "lib", "root", "writer", "choices", "implementation", "platform", "attention",
    "causal", "aot", "communicator", "decomposable", "exclusive", "interleaved", "groups",
    "lengths", "multiarray", "precision",
}
GENERIC_NAMES = frozenset(_GENERIC_WORDS | {n for src in _GENERIC_SOURCES for n in dir(src)})


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def load_name_lists(data_dir: Path = DATA_DIR) -> dict[str, frozenset[str]]:
    """version -> names, from every ``tensorrt-<version>.txt`` in ``data_dir``."""
    lists = {}
    for path in sorted(data_dir.glob("tensorrt-*.txt")):
        version = path.stem[len("tensorrt-"):]
        lines = path.read_text(encoding="utf-8").splitlines()
        lists[version] = frozenset(ln.strip() for ln in lines
                                   if ln.strip() and not ln.startswith("#"))
    return dict(sorted(lists.items(), key=lambda kv: version_key(kv[0])))


@dataclass(frozen=True)
class Finding:
    name: str
    line: int
    missing_in: tuple[str, ...]

    def __str__(self) -> str:
        return f"line {self.line}: {self.name} (missing in TensorRT {', '.join(self.missing_in)})"


@dataclass(frozen=True)
class _Use:
    name: str          # plain attribute name, or "Enum.MEMBER" for a qualified use
    line: int
    guarded: bool


def _string_set(node: ast.AST) -> set[str] | None:
    """The strings of ``{"a", "b"}``, ``["a"]``, ``("a",)``, ``frozenset({...})``, ``set()``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id in ("set", "frozenset") and len(node.args) <= 1 and not node.keywords:
        return _string_set(node.args[0]) if node.args else set()
    if isinstance(node, (ast.Set, ast.List, ast.Tuple)):
        out = set()
        for elt in node.elts:
            if not (isinstance(elt, ast.Constant) and isinstance(elt.value, str)):
                return None
            out.add(elt.value)
        return out
    return None


def module_set(tree: ast.Module, variable: str) -> set[str]:
    """Strings of a module-level ``variable = {...}`` (also annotated)."""
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == variable for t in targets):
            strings = _string_set(value)
            if strings is None:
                raise ValueError(f"{variable} (line {node.lineno}) must be a set, list or tuple "
                                 f"of string literals")
            out |= strings
    return out


def _attr_string_call(node: ast.AST) -> tuple[str, str, ast.AST] | None:
    """``hasattr(obj, "N")`` / ``getattr(obj, "N"[, d])`` -> (function, "N", obj)."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
        return node.func.id, node.args[1].value, node.args[0]
    return None


def _guard_names(test: ast.AST) -> set[str]:
    """Names a condition tests for with hasattr/getattr (anywhere inside it)."""
    names = set()
    for sub in ast.walk(test):
        call = _attr_string_call(sub)
        if call and (call[0] == "hasattr" or len(sub.args) >= 3):
            names.add(call[1])
    return names


def _owner(node: ast.AST) -> str | None:
    """Last component of the object an attribute is taken from (``trt.BuilderFlag`` ->
    ``BuilderFlag``)."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _catches_attribute_error(handler: ast.ExceptHandler) -> bool:
    t = handler.type
    elts = t.elts if isinstance(t, ast.Tuple) else [t]
    return any(isinstance(e, ast.Name) and e.id == "AttributeError" for e in elts)


class _Collector(ast.NodeVisitor):
    def __init__(self) -> None:
        self.uses: list[_Use] = []
        self.guards: list[set[str] | None] = []      # None = every name (try/AttributeError)

    def _guarded(self, name: str) -> bool:
        plain = name.rsplit(".", 1)[-1]
        return any(g is None or plain in g or name in g for g in self.guards)

    def _use(self, name: str, owner: str | None, line: int, guarded: bool) -> None:
        self.uses.append(_Use(name, line, guarded or self._guarded(name)))
        if owner is not None:
            qualified = f"{owner}.{name}"
            if qualified in QUALIFIED_REMOVALS:
                self.uses.append(_Use(qualified, line, guarded or self._guarded(qualified)))

    def _visit_guarded(self, nodes, names) -> None:
        self.guards.append(names)
        try:
            for n in nodes if isinstance(nodes, list) else [nodes]:
                self.visit(n)
        finally:
            self.guards.pop()

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            self._use(node.attr, _owner(node.value), node.lineno, False)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        call = _attr_string_call(node)
        if call:
            func, name, obj = call
            guarded = func == "hasattr" or len(node.args) >= 3
            self._use(name, _owner(obj), node.lineno, guarded)
        self.generic_visit(node)

    def _visit_conditional(self, node) -> None:
        self.visit(node.test)
        names = _guard_names(node.test)
        self._visit_guarded(node.body, names)
        self._visit_guarded(node.orelse, names)

    visit_If = visit_While = visit_IfExp = _visit_conditional

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        names: set[str] = set()
        for value in node.values:
            self._visit_guarded(value, set(names))
            names |= _guard_names(value)

    def visit_Try(self, node: ast.Try) -> None:
        if any(_catches_attribute_error(h) for h in node.handlers):
            self._visit_guarded(node.body, None)
        else:
            for n in node.body:
                self.visit(n)
        for n in node.handlers + node.orelse + node.finalbody:
            self.visit(n)

    visit_TryStar = visit_Try


def find_unguarded(source: str, lists: dict[str, frozenset[str]],
                   filename: str = "<string>") -> list[Finding]:
    """Every unguarded use of a version-dependent TensorRT name in ``source``."""
    tree = ast.parse(source, filename=filename)
    guarded_decl = module_set(tree, "VERSION_GUARDED_NAMES")
    not_trt = module_set(tree, "NOT_TENSORRT_NAMES")
    every = frozenset.intersection(*lists.values())
    some = frozenset.union(*lists.values())
    collector = _Collector()
    collector.visit(tree)
    findings: dict[tuple[str, int], Finding] = {}
    for use in collector.uses:
        if use.guarded or use.name in guarded_decl or use.name in not_trt:
            continue
        if "." in use.name:
            first_major = QUALIFIED_REMOVALS[use.name]
            missing = tuple(v for v in lists if version_key(v)[0] >= first_major)
        else:
            if (use.name.startswith("_") or use.name in GENERIC_NAMES
                    or use.name not in some or use.name in every):
                continue
            missing = tuple(v for v, names in lists.items() if use.name not in names)
        if missing:
            findings.setdefault((use.name, use.line), Finding(use.name, use.line, missing))
    return sorted(findings.values(), key=lambda f: (f.line, f.name))
