"""mc: the article's Monte Carlo magnitude tests, streamed, sharded and bit-reproducible.

Examples:
  >>> import flaxinit, mc
  >>> [r] = mc.standard_test(0, [5], 2048, flaxinit.xavier_standard())
  >>> round(r.expected, 6)
  0.465459
"""

from mc._engine import BLOCK, tree_sum
from mc._fit import FitResult, fit_normalized, fit_standard
from mc._protocols import Task, depth_task, depth_test, normalized_tasks, normalized_test, standard_tasks, standard_test
from mc._results import DepthResult, NormalizedResult, StandardResult

__all__ = [
    "BLOCK",
    "DepthResult",
    "FitResult",
    "NormalizedResult",
    "StandardResult",
    "Task",
    "depth_task",
    "depth_test",
    "fit_normalized",
    "fit_standard",
    "normalized_tasks",
    "normalized_test",
    "standard_tasks",
    "standard_test",
    "tree_sum",
]
