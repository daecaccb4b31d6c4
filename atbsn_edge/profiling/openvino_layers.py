"""Per-layer times and multiply-add rates of an OpenVINO model, from its performance counters.

Used by ``benchmarks/layer_profile.py`` (the per-layer breakdown) and
``benchmarks/cpu_speed_bars.py`` (issue 12's floor by its own definition: the network's
multiply-adds at the fastest int8 rate any of its layers reaches on this CPU). Needs an
``OpenVinoRuntime`` opened with ``profile=True``.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

# node name -> (seconds, kernel OpenVINO chose (exec_type), node type), of one call
CallProfile = Mapping[str, tuple[float, str, str]]


@dataclass(frozen=True)
class Layer:
    """One node of the compiled model: its median time over calls, and its multiply-adds."""

    name: str
    kind: str
    kernel: str
    seconds: float
    macs: float

    @property
    def rate(self) -> float | None:
        """Multiply-adds per second (None for a node without any)."""
        return self.macs / self.seconds if self.macs and self.seconds else None

    @property
    def int8(self) -> bool:
        """Whether OpenVINO ran this node with an int8 kernel."""
        return "i8" in self.kernel.lower()


def layer_macs(model: Any) -> dict[str, float]:
    """Multiply-adds of every (transposed) convolution of an ``openvino.Model``, by name."""
    macs = {}
    for op in model.get_ops():
        kind = op.get_type_name()
        if kind not in ("Convolution", "ConvolutionBackpropData"):
            continue
        weight = [int(d) for d in op.input(1).get_partial_shape().to_shape()]
        if kind == "Convolution":  # weights O x I x kh x kw, per output element
            out = op.output(0).get_partial_shape().to_shape()
            macs[op.get_friendly_name()] = float(np.prod(out)) * np.prod(weight[1:])
        else:  # weights I x O x kh x kw, per input element
            inp = op.input(0).get_partial_shape().to_shape()
            macs[op.get_friendly_name()] = float(np.prod(inp)) * np.prod(weight[1:])
    return macs


def call_profile(request: Any) -> dict[str, tuple[float, str, str]]:
    """The counters of the request's last call: node name -> (seconds, kernel, node type)."""
    return {p.node_name: (p.real_time.total_seconds(), p.exec_type, p.node_type)
            for p in request.profiling_info}


def layers_of(profiles: Sequence[CallProfile], macs: Mapping[str, float]) -> list[Layer]:
    """Every node of the calls' profiles with its median time, slowest first."""
    if not profiles:
        raise ValueError("no call was profiled")
    first = profiles[0]
    layers = [Layer(name, first[name][2], first[name][1],
                    statistics.median(p[name][0] for p in profiles if name in p),
                    macs.get(name, 0.0))
              for name in first]
    return sorted(layers, key=lambda layer: layer.seconds, reverse=True)


def fastest_int8_layer(layers: Sequence[Layer]) -> Layer | None:
    """The int8 (transposed) convolution with the highest multiply-add rate, if any."""
    int8 = [layer for layer in layers if layer.int8 and layer.rate]
    return max(int8, key=lambda layer: layer.rate) if int8 else None
