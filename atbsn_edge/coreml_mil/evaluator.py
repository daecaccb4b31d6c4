"""Op-by-op numpy evaluation of a saved ML program.

**Precision.** Every op is computed in float32 (data movement exactly) and its output is
rounded to the dtype the program declares for it: an fp16 program's tensors are all fp16
values, as on the device, and each op starts from fp16 inputs. The alternative, computing
fp16 ops in numpy float16, was not chosen: numpy has no float16 BLAS (its float16 matrix
products are orders of magnitude slower) and its float16 accumulation order would not be any
Apple device's either. What a Core ML program fixes is each tensor's type, and that is what this
reproduces; how wide a device accumulates inside a convolution (the GPU and the Neural Engine
do not document it) is not the program's, so the evaluator models an fp16 device with float32
accumulation, and the fp16 parity threshold (relative L2 5e-3) covers the rest.

The program is the one saved on disk (``package.SavedPackage.program``), never the converter's
in-memory model: a bug in what was written (a pad, a weight blob) shows here.
"""
from __future__ import annotations

import logging
import os
import time
from collections import Counter
from typing import Any, Mapping

import numpy as np

from ..errors import AtbsnError
from .ops import input_vars, op_function
from .package import SavedPackage, read_package

log = logging.getLogger(__name__)


def numpy_dtype(var: Any) -> np.dtype:
    """The numpy dtype of a program variable's declared MIL dtype."""
    from coremltools.converters.mil.mil import types

    return np.dtype(types.nptype_from_builtin(var.dtype))


class ProgramEvaluator:
    """The ``main`` function of a saved package's ML program, ready to evaluate.

    ``evaluate({"input": array})`` returns ``{"output": array}`` (every output of the
    function, by name) in each output's declared dtype. Unknown ops are refused when the
    evaluator is built, not half-way through a run."""

    def __init__(self, package: SavedPackage | str | os.PathLike, function: str = "main") -> None:
        self.package = package if isinstance(package, SavedPackage) else read_package(package)
        program = self.package.program()
        if function not in program.functions:
            raise AtbsnError(f"{self.package.path}: its program has no function {function!r} "
                             f"(has {', '.join(program.functions)})")
        self.function = program.functions[function]
        self.operations = [op for op in self.function.operations if op.op_type != "const"]
        self._functions = [op_function(op) for op in self.operations]   # refuse unknown ops now
        self.input_names = list(self.function.inputs)
        self.output_names = [var.name for var in self.function.outputs]
        self._last_use = self._lifetimes()
        self.op_seconds: Counter = Counter()

    @property
    def op_counts(self) -> dict[str, int]:
        """How many ops of each type the function has, ``const`` included."""
        return dict(Counter(op.op_type for op in self.function.operations))

    def input_shape(self, name: str) -> tuple[int, ...]:
        """The shape the function declares for its input ``name``."""
        return tuple(int(d) for d in self.function.inputs[name].shape)

    def _lifetimes(self) -> dict[str, int]:
        last: dict[str, int] = {}
        for index, op in enumerate(self.operations):
            for var in input_vars(op):
                last[var.name] = index
        for name in self.output_names:
            last[name] = len(self.operations)
        return last

    def evaluate(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the program on ``inputs`` (by name); returns every output by name."""
        env: dict[str, np.ndarray] = {}
        for name, var in self.function.inputs.items():
            if name not in inputs:
                raise AtbsnError(f"the program takes input {name!r}; given {', '.join(inputs)}")
            value = np.asarray(inputs[name])
            if value.shape != tuple(var.shape):
                raise AtbsnError(f"input {name!r} has shape {value.shape}, the program's is "
                                 f"{tuple(var.shape)}")
            env[name] = value.astype(numpy_dtype(var))
        for index, (op, function) in enumerate(zip(self.operations, self._functions)):
            start = time.perf_counter()
            results = function(op, env)
            if len(results) != len(op.outputs):
                raise AtbsnError(f"{op.op_type} {op.name}: {len(results)} results for "
                                 f"{len(op.outputs)} outputs")
            for var, value in zip(op.outputs, results):
                value = np.asarray(value)
                if tuple(value.shape) != tuple(var.shape):
                    raise AtbsnError(f"{op.op_type} {op.name}: computed shape {value.shape}, "
                                     f"the program declares {tuple(var.shape)}")
                env[var.name] = value.astype(numpy_dtype(var), copy=False)
            for var in input_vars(op):  # free what no later op reads
                if self._last_use.get(var.name) == index and var.name in env:
                    del env[var.name]
            self.op_seconds[op.op_type] += time.perf_counter() - start
        return {name: env[name] for name in self.output_names}


def evaluate_package(path: str | os.PathLike, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One-shot: read the package at ``path`` and evaluate it on ``inputs``."""
    return ProgramEvaluator(path).evaluate(inputs)
