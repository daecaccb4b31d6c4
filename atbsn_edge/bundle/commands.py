"""The command lines the toolkit tells a user to run on a bundle (shared by the exporter and
the runtimes, which must not import each other)."""
from __future__ import annotations

import os
import shlex
from typing import Sequence


def add_target_command(bundle: str | os.PathLike, target: str, extra: Sequence[str] = ()) -> str:
    """``python -m atbsn_edge.export --target T --from-bundle B [extra]``: how a target (a
    TensorRT engine, typically) is added to a bundle on the device that runs it."""
    return shlex.join(["python", "-m", "atbsn_edge.export", "--target", target,
                       "--from-bundle", str(bundle), *extra])
