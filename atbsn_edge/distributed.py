"""The ranks of a distributed training run: who this process is, and how the ranks meet.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``
and holds the rendezvous itself. Ranks started by hand with the same variables meet through
:func:`rendezvous` instead: a store polled in Python, which says what it waits for, stops on
Ctrl-C and gives up after :data:`RENDEZVOUS_SECONDS` (``ATBSN_RENDEZVOUS_SECONDS``), where
PyTorch's own waits 30 minutes in C++; each rank holds its place by number, and one that stops
waiting gives it up. gloo on CPUs, nccl on GPUs. :func:`slowest` is the clock every rank's
``--time-limit`` follows.
"""
from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
from dataclasses import dataclass

import torch

from .errors import AtbsnError, first_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a ``torchrun`` job (world size 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0: the process that checkpoints, validates and shows progress."""
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> "Distributed":
        """The rank and size torchrun sets in the environment (one process without it); set
        by hand without what torchrun also sets, they are an :class:`AtbsnError`."""
        values = {}
        for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)):
            text = os.environ.get(name, str(default))
            if not text.strip().isdigit():
                raise AtbsnError(f"the environment variable {name}={text!r} is not a whole "
                                 "number; unset it, or start the run with torchrun")
            values[name] = int(text)
        if values["WORLD_SIZE"] > 1:
            missing = [n for n in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(n)]
            if missing:
                raise AtbsnError(f"WORLD_SIZE={values['WORLD_SIZE']} asks for a distributed "
                                 f"run but {' and '.join(missing)} is not set; start it with "
                                 "torchrun --nproc-per-node N -m atbsn_edge.train ..., or "
                                 "unset WORLD_SIZE")
        return cls(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])


def start_distributed(device_name: str) -> tuple[Distributed, torch.device]:
    """This process's place in the run, and the device it trains on (``device_name``, or
    ``cuda:LOCAL_RANK`` on GPUs); joins the process group where ``WORLD_SIZE`` > 1."""
    job = Distributed.from_environment()
    device = torch.device(device_name)
    if job.world_size > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", job.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            if os.environ.get("TORCHELASTIC_RUN_ID"):  # torchrun: its agent holds the store
                dist.init_process_group(backend)
            else:  # started by hand: the other ranks may never come
                dist.init_process_group(backend, store=rendezvous(job), rank=job.rank,
                                        world_size=job.world_size)
        log.info("rank %d of %d on %s", job.rank, job.world_size, device)
    return job, device


#: seconds the ranks of a run started by hand (RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT
#: set without torchrun) wait for each other before the run ends with an error; the
#: environment variable ATBSN_RENDEZVOUS_SECONDS overrides it
RENDEZVOUS_SECONDS = 300.0


def rendezvous_seconds() -> float:
    """:data:`RENDEZVOUS_SECONDS`, or ``ATBSN_RENDEZVOUS_SECONDS`` where it is set."""
    text = os.environ.get("ATBSN_RENDEZVOUS_SECONDS")
    if text is None:
        return RENDEZVOUS_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not (math.isfinite(seconds) and seconds > 0):
        raise AtbsnError(f"ATBSN_RENDEZVOUS_SECONDS={text!r}: expected a number of seconds "
                         "above 0 (default 300); set it to one, or unset it")
    return seconds


def rendezvous(job: Distributed, seconds: float | None = None,
                poll: float = 0.5) -> "torch.distributed.Store":
    """The store of a distributed run started without torchrun, once all ``job.world_size``
    ranks have joined it at ``MASTER_ADDR:MASTER_PORT`` (rank 0 serves it). PyTorch's own
    rendezvous waits in C++, deaf to Ctrl-C, for 30 minutes when a rank never starts; this
    waits in Python, says what it waits for, and gives up after ``seconds`` (default
    :data:`RENDEZVOUS_SECONDS`) with an error that says how to start the other ranks. Ranks
    are counted by number; one that stops waiting leaves the count."""
    from datetime import timedelta

    import torch.distributed as dist

    seconds = rendezvous_seconds() if seconds is None else seconds
    host, port_text = os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"]
    if not port_text.strip().isdigit() or not 0 < int(port_text) < 65536:
        raise AtbsnError(f"MASTER_PORT={port_text!r} is not a port number (1-65535); set it to "
                         "a free port, the same for every rank")
    port = int(port_text)
    where = f"{host}:{port}"
    deadline = time.monotonic() + seconds

    def give_up(joined: str) -> AtbsnError:
        return AtbsnError(f"WORLD_SIZE={job.world_size}: {joined} in {seconds:g} s at {where} "
                          f"(this is RANK={job.rank}); start every rank 0..{job.world_size - 1} "
                          "with the same MASTER_ADDR and MASTER_PORT, or start the run with "
                          "torchrun --nproc-per-node N, or unset WORLD_SIZE for one process")

    log.info("rank %d waiting for the other ranks of %d at %s (up to %g s)", job.rank,
             job.world_size, where, seconds)
    if not job.is_main:  # probed here: PyTorch's own connect retries in C++, loudly, deaf to Ctrl-C
        while not port_open(host, port):
            if time.monotonic() > deadline:
                raise give_up("rank 0 did not answer")
            time.sleep(poll)
    try:
        store = dist.TCPStore(host, port, job.world_size, is_master=job.is_main,
                              timeout=timedelta(seconds=30), wait_for_workers=False)
    except (RuntimeError, OSError) as exc:  # the port taken, or rank 0 gone again
        first = first_line(exc)
        if job.is_main:
            raise AtbsnError(f"cannot serve the run's rendezvous at {where} ({first}); set "
                             "MASTER_PORT to a free port, the same for every rank") from None
        raise AtbsnError(f"cannot join the run's rendezvous at {where} ({first}); start "
                         "every rank again") from None
    keys = [f"atbsn_rank_{rank}" for rank in range(job.world_size)]
    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
    try:
        try:
            # a rank's place is its key, claimed with this process's token: a twin finds
            # another token there and fills no gap; a rank that left set it back to ""
            claimed = store.compare_set(keys[job.rank], "", token) == token.encode()
            if not claimed:
                raise AtbsnError(f"RANK={job.rank} joined the run at {where} twice: another "
                                 "process was given the same RANK, or this rank was killed "
                                 "outright and started again while the others waited; give "
                                 f"each process its own RANK 0..{job.world_size - 1} and start "
                                 "every rank again")
            while (joined := _joined(store, keys)) < job.world_size:
                if time.monotonic() > deadline:
                    raise give_up(f"only {joined} of {job.world_size} processes joined")
                time.sleep(poll)
        except RuntimeError:
            raise
        except BaseException:  # Ctrl-C, SIGTERM, its own clock: this rank leaves the count
            _leave(store, keys[job.rank], token)  # a no-op where another token holds the place
            raise
    except RuntimeError as exc:  # rank 0 stopped while the others waited
        raise AtbsnError(f"the run's rendezvous at {where} went away ({first_line(exc)}): "
                         "rank 0 stopped; start every rank again") from None
    store.set_timeout(timedelta(minutes=30))  # PyTorch's own, for the process group's waits
    return store


def _joined(store: "torch.distributed.Store", keys: list[str]) -> int:
    """How many of the ranks' ``keys`` hold a claim (a key, once written, is never deleted:
    a rank that left holds ``""``)."""
    return sum(1 for key in keys if store.check([key]) and store.get(key))


def _leave(store: "torch.distributed.Store", key: str, token: str) -> None:
    """Give up this rank's place, where it still holds it with ``token``, so that the others
    do not go on to meet it in gloo, where they would hang, and so that it may be started
    again. A rank that stops at the moment the last one joins may be too late: the others
    may have seen every place taken already."""
    try:
        store.compare_set(key, token, "")
    except RuntimeError:  # rank 0, which holds the store, has gone already
        pass


def port_open(host: str, port: int) -> bool:
    """Whether something accepts connections at ``host:port`` (rank 0's store, once it serves)."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def slowest(elapsed: float, device: torch.device) -> float:
    """The largest ``elapsed`` over all ranks, so that a time limit stops every rank at once."""
    import torch.distributed as dist

    value = torch.tensor([elapsed], dtype=torch.float64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return float(value.item())
