"""mc: the article's Monte Carlo magnitude tests, the model tools and the μP checks.

Three rooms, one namespace:

* the Monte Carlo engine and the article's protocols: :func:`standard_test`,
  :func:`normalized_test`, :func:`depth_test` (streamed, sharded and bit-reproducible
  means over millions of initializations), their refits :func:`fit_standard`,
  :func:`fit_normalized`, and :func:`tree_sum`;
* the model tools, for any ``flax.linen`` module or ``flax.nnx`` factory: :func:`audit` and
  :func:`correlation_map` (signal propagation at init, on the engine), :func:`reference_model`;
* the μP checks, which train a model at several sizes: :func:`coord_check`,
  :func:`verify` (a pass/fail verdict naming the cause), :func:`lr_transfer`, and their
  reference models :func:`width_model`.

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
