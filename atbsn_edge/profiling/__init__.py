"""Profiling: one way of timing, the physical floors a latency is measured against, the
machine it ran on and Jetson power from tegrastats. The CLI is ``python -m atbsn_edge.profile``.

- :mod:`.timing`: :func:`time_calls` and the latency statistics (median, p90, p99, ...);
- :mod:`.graph_cost`: multiply-adds and minimum bytes of an artifact, from its fp32 ONNX
  (``onnx`` only, no PyTorch);
- :mod:`.floors`: peak rates of known devices (Jetson Orin modules, with sources) or measured
  on the spot on a CPU (one wide convolution in OpenVINO per precision), and the floor
  ``max(MACs / rate, bytes / bandwidth)``;
- :mod:`.machine`: CPU model and the flags that matter, GPU, library versions;
- :mod:`.tegrastats`: parser, sampler and energy integration for Jetson boards.
"""
from .timing import Timing, time_calls

__all__ = ["Timing", "time_calls"]
