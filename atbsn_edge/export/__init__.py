"""Export: the target table and one converter module per target, named source-to-target."""
from .targets import TARGETS, Target, get_target, targets_table

__all__ = ["TARGETS", "Target", "get_target", "targets_table"]
