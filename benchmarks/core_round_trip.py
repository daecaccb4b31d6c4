"""How far apart two CPUs are: the time a cache line takes to go from one to the other and back.

Two threads, pinned to two CPUs, pass a counter back and forth through one shared cache line;
the mean time per round trip tells where the two CPUs sit. On the AMD EPYC development VM
(2 vCPUs) it takes three values, by where the host runs the two vCPUs at that moment: about
60 ns (one core complex, one L3), 150-200 ns (two core complexes) and 350-400 ns (farther,
likely two sockets). A single OpenVINO call on two threads runs about 7% slower in the last
(the default int8 bundle 99.8 against 93.3 ms over four minutes; docs/export.md), because each
layer reads what the other thread wrote in the one before. It is not the only slow period
there: calls also slow down with the CPUs near, so the placement alone does not decide a run.

The two threads are C (pure Python cannot spin on a cache line fast enough to tell these
apart): a 30-line source compiled with the machine's C compiler (``cc``, or ``$CC``) into a
temporary folder. Linux only (``pthread_setaffinity_np``). Without a compiler that builds it,
off Linux, or with fewer than two usable CPUs, :func:`round_trip_meter` returns None.

    python benchmarks/core_round_trip.py                 # every 0.5 s for 30 s, CPUs 0 and 1
    python benchmarks/core_round_trip.py --seconds 120 --cpus 2 3
"""
from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

# A round trip this slow or slower: the two CPUs share no cache the host lets them share quickly
# (the EPYC VM's 350-400 ns placement; its others measure 50-250 ns).
FAR_NS = 250.0

_SOURCE = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

static _Atomic long line __attribute__((aligned(64)));
struct side { int cpu; long iterations; int first; double ns; int pinned; };

static void *play(void *arg) {
    struct side *s = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(s->cpu, &set);
    s->pinned = pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < s->iterations; i++) {
        long mine = 2 * i + (s->first ? 0 : 1);
        while (atomic_load_explicit(&line, memory_order_acquire) != mine) ;
        atomic_store_explicit(&line, mine + 1, memory_order_release);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    s->ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / s->iterations;
    return 0;
}

/* mean ns per round trip between cpu_a and cpu_b; -1 when a thread could not be pinned */
double round_trip_ns(int cpu_a, int cpu_b, long iterations) {
    struct side a = {cpu_a, iterations, 1, 0, 0}, b = {cpu_b, iterations, 0, 0, 0};
    pthread_t ta, tb;
    atomic_store(&line, 0);
    pthread_create(&tb, 0, play, &b);
    pthread_create(&ta, 0, play, &a);
    pthread_join(ta, 0);
    pthread_join(tb, 0);
    return (a.pinned && b.pinned) ? a.ns : -1.0;
}
"""


def usable_cpus() -> list[int]:
    """The CPUs this process may run on, in order (none off Linux, where the threads cannot
    be pinned)."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


def round_trip_meter(cpus: tuple[int, int] | None = None,
                     iterations: int = 20000) -> Callable[[], float] | None:
    """A function that measures the round trip between ``cpus`` (default: the first two usable
    ones) in ns, the best of three runs of ``iterations``; None when there is no C compiler or
    fewer than two usable CPUs. The library is compiled once, here."""
    cpus = cpus or tuple(usable_cpus()[:2])
    if len(cpus) == 2 and cpus[0] == cpus[1]:  # both threads would spin on one CPU for ever
        raise ValueError(f"the round trip needs two different CPUs, not {cpus}")
    compiler = shlex.split(os.environ.get("CC", "")) or [shutil.which("cc") or
                                                        shutil.which("gcc") or ""]
    if len(cpus) < 2 or not compiler[0]:
        return None
    folder = Path(tempfile.mkdtemp(prefix="core_round_trip_"))
    try:
        (folder / "round_trip.c").write_text(_SOURCE)
        try:
            built = subprocess.run([*compiler, "-O2", "-shared", "-fPIC", "-pthread", "-o",
                                    str(folder / "round_trip.so"), str(folder / "round_trip.c")],
                                   capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):  # $CC names nothing runnable, or hangs
            return None
        if built.returncode != 0:
            return None
        library = ctypes.CDLL(str(folder / "round_trip.so"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the loaded library stays mapped
    library.round_trip_ns.restype = ctypes.c_double
    library.round_trip_ns.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long]

    def measure() -> float:
        best = min(library.round_trip_ns(cpus[0], cpus[1], iterations) for _ in range(3))
        if best < 0:
            raise RuntimeError(f"could not pin threads to CPUs {cpus}")
        return best
    return measure


def main() -> None:
    from atbsn_edge.arguments import positive_float
    from atbsn_edge.cli import new_parser
    from atbsn_edge.errors import AtbsnError
    from atbsn_edge.profiling.machine import describe_cpu

    parser = new_parser("core_round_trip.py", __doc__)
    parser.add_argument("--seconds", type=positive_float, default=30.0)
    parser.add_argument("--every", type=positive_float, default=0.5, help="seconds between samples")
    parser.add_argument("--cpus", type=int, nargs=2, metavar=("A", "B"),
                        help="two CPU numbers (default: the first two this process may use)")
    args = parser.parse_args()
    usable = usable_cpus()
    if args.cpus and (args.cpus[0] == args.cpus[1] or not set(args.cpus) <= set(usable)):
        raise AtbsnError(f"--cpus {args.cpus[0]} {args.cpus[1]}: give two different CPUs this "
                         f"process may use: {usable}")
    if len(usable) < 2:
        raise AtbsnError(f"this process may use {len(usable)} CPU ({usable}); the round trip "
                         "needs two, and Linux to pin its threads")
    meter = round_trip_meter(tuple(args.cpus) if args.cpus else None)
    if meter is None:
        raise AtbsnError("no C compiler built the round trip's 30 lines (tried $CC, cc, gcc): "
                         "install one (Debian: apt install gcc) or point CC at it")
    print(f"CPU: {describe_cpu()}")
    print("| seconds | round trip ns | placement |")
    print("|---:|---:|---|")
    started = time.monotonic()
    while time.monotonic() - started < args.seconds:
        ns = meter()
        print(f"| {time.monotonic() - started:.1f} | {ns:.0f} | {'far' if ns >= FAR_NS else 'near'} |",
              flush=True)
        time.sleep(args.every)


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli

    raise SystemExit(run_cli(main))
