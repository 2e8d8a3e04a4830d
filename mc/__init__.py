"""mc: the article's Monte Carlo magnitude tests, streamed, sharded and bit-reproducible.

Int seeds draw with Philox4x32-10 (:func:`philox_key`, re-exported from
:mod:`flaxinit.prng` with its block function :func:`philox4x32`); a key passed in keeps its
own generator.

Examples:
  >>> import flaxinit, mc
  >>> [r] = mc.standard_test(0, [5], 2048, flaxinit.xavier_standard())
  >>> round(r.expected, 6)
  0.465459
"""

from flaxinit.prng import philox4x32, philox_key
from mc._audit import (
    AuditResult,
    CorrelationResult,
    LayerAudit,
    ParamAudit,
    audit,
    audit_task,
    correlation_map,
    correlation_task,
)
from mc._coord import CoordCheckResult, CoordRow, coord_check, plot_coord_data
from mc._engine import BLOCK, tree_sum
from mc._fit import FitResult, fit_normalized, fit_standard
from mc._models import ReferenceModel, reference_model
from mc._protocols import Task, depth_task, depth_test, normalized_tasks, normalized_test, standard_tasks, standard_test
from mc._results import DepthResult, NormalizedResult, StandardResult
from mc._transfer import TransferResult, lr_transfer, optimal_log2_lr, plot_transfer
from mc._verify import Check, Failure, Verdict, verify
from mc._width_models import WidthModel, width_model

__all__ = [
    "BLOCK",
    "AuditResult",
    "Check",
    "CoordCheckResult",
    "CoordRow",
    "CorrelationResult",
    "DepthResult",
    "Failure",
    "FitResult",
    "LayerAudit",
    "NormalizedResult",
    "ParamAudit",
    "ReferenceModel",
    "StandardResult",
    "Task",
    "TransferResult",
    "Verdict",
    "WidthModel",
    "audit",
    "audit_task",
    "coord_check",
    "correlation_map",
    "correlation_task",
    "depth_task",
    "depth_test",
    "fit_normalized",
    "fit_standard",
    "lr_transfer",
    "normalized_tasks",
    "normalized_test",
    "optimal_log2_lr",
    "philox4x32",
    "philox_key",
    "plot_coord_data",
    "plot_transfer",
    "reference_model",
    "standard_tasks",
    "standard_test",
    "tree_sum",
    "verify",
    "width_model",
]
