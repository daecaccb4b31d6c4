"""AT-BSN and its students, the architecture registry and checkpoint I/O."""
from .atbsn import ATBSN, FixedHole, hole_to_shift
from .checkpoint import load_checkpoint, save_checkpoint
from .denoiser import Denoiser
from .registry import ARCHITECTURES, Architecture, detect_architecture, get_architecture
from .students import StudentA, StudentB, StudentC

__all__ = ["ATBSN", "ARCHITECTURES", "Architecture", "Denoiser", "FixedHole", "StudentA",
           "StudentB", "StudentC", "detect_architecture", "get_architecture", "hole_to_shift",
           "load_checkpoint", "save_checkpoint"]
