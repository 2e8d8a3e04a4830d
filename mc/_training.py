"""One model at one size, ready to train under μP or SP: what :func:`mc.coord_check` and
:func:`mc.lr_transfer` share.

A :class:`Trainee` holds the model as pure functions (:class:`mc._model.Model`, so its
layers are captured exactly as :func:`mc.audit` captures them, and it is called with the
same ``call_kwargs``, ``method`` and ``output``), the parameters'
:class:`flaxinit.mup.InfShape` against the base model (stacks and einsum fans from the
model's trace), and builds the initial parameters
(a standard draw, rescaled by :func:`flaxinit.mup.rescale` under μP) and the optimizer
(:func:`flaxinit.mup.adamw` or :func:`flaxinit.mup.sgd`). Standard parametrization is the
same code with the model as its own base, where every μP rule is the identity: SP and μP
runs differ in nothing but the multipliers.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from flaxinit import mup
from flaxinit.tooling import check_int
from mc._cache import ProgramCache
from mc._model import Layout, Model, as_model, param_shapes, trace_layout
from mc._width_models import PARAMETRIZATIONS

OPTIMIZERS = mup.OPTIMIZERS  # the optimizers μP has rules for, by name
LOSSES = ("xent", "mse")

Loss = Callable[[jax.Array, jax.Array], jax.Array]


def loss_function(loss: str | Loss) -> Loss:
    """``(outputs, targets) -> scalar``: ``"xent"`` (softmax cross-entropy against integer
    labels of ``outputs.shape[:-1]``, averaged), ``"mse"`` (the mean of the squared
    differences) or a callable of the two."""
    if callable(loss):
        return loss
    if loss == "xent":
        return lambda y, t: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(y.astype(jnp.float32), t))
    if loss == "mse":
        return lambda y, t: jnp.mean(jnp.square(y.astype(jnp.float32) - t))
    raise ValueError(
        f"loss must be one of {', '.join(LOSSES)} or a function (outputs, targets) -> scalar, got {loss!r}"
    )


def check_sizes(sizes: Any, name: str) -> tuple[int, ...]:
    """Distinct positive ints, at least two (a slope or a spread needs two), in increasing order."""
    try:
        values = [check_int(s, f"each of {name}") for s in sizes]
    except TypeError:
        raise TypeError(f"{name} must be a sequence of positive ints, got {sizes!r}") from None
    if len(values) < 2 or len(set(values)) != len(values):
        raise ValueError(f"{name} must hold at least two distinct sizes, got {list(values)}")
    return tuple(sorted(values))


Optimizer = str | Callable[[Any, Any], optax.GradientTransformation]
Init = Callable[[Any, Any], Any]


def check_optimizer(optimizer: Any) -> Optimizer:
    """``"adam"``, ``"sgd"`` or a function ``(learning_rate, shapes) -> optax.GradientTransformation``."""
    if callable(optimizer):
        return optimizer
    if optimizer not in OPTIMIZERS:
        raise ValueError(
            f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))} or a function (learning_rate, shapes) -> "
            f"optax.GradientTransformation, got {optimizer!r}"
        )
    return optimizer


def optimizer_name(optimizer: Optimizer) -> str:
    """How a result records the optimizer: its name, or a function's ``__name__``."""
    return optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__", type(optimizer).__name__)


@dataclasses.dataclass(frozen=True)
class Trainee:
    """One model at one size: ``init(key, x) -> (full variables, trainable)`` and ``optimizer(lr)``.

    Attributes:
      model: the model as pure functions.
      shapes: its parameters' :class:`flaxinit.mup.InfShape` against the base model.
      start: the initial parameters from a draw of the model (μP's ``mup.rescale``, the
        identity under SP, or the caller's ``init(params, shapes)``).
      make_optimizer: ``learning_rate -> optax.GradientTransformation``.
    """

    model: Model
    shapes: Any
    start: Callable[[Any], Any]
    make_optimizer: Callable[[Any], optax.GradientTransformation]

    def init(self, key: jax.Array, x: jax.Array) -> tuple[Any, Any]:
        full = self.model.init(key, x)
        return full, self.start(self.model.params(full))

    def with_params(self, full: Any, trainable: Any) -> Any:
        return self.model.with_params(full, trainable)

    def optimizer(self, learning_rate: float | jax.Array) -> optax.GradientTransformation:
        return self.make_optimizer(learning_rate)


def _check_bases(model_at: Callable[[int], Any], base: int, x: jax.Array, call: tuple[Any, Any, Any]) -> None:
    """The base the model's own μP modules state must be the base model's: a
    :class:`flaxinit.mup.Readout` fed ``base_width`` features there, an attention whose
    ``mup.dot_product_attention(base_head_dim)`` has that head size there."""
    layout = trace_layout(as_model(model_at(base), *call), x)
    for path, (_, base_width, width) in layout.facts("readout").items():
        if base_width != width:
            raise ValueError(f"mup.Readout {path!r} has base_width={base_width}, but the base model (size {base}) "
                             f"feeds it {width} features: state the base once, as the base model's width")  # fmt: skip
    for path, (base_head_dim, head_dim) in layout.facts("attention").items():
        if base_head_dim != head_dim:
            raise ValueError(f"attention {path!r} has mup.dot_product_attention(base_head_dim={base_head_dim}), but "
                             f"the base model (size {base}) has head_dim {head_dim} there: state the base once, as "
                             "the base model's head size")  # fmt: skip


#: The base model's parameter shapes by ``(model, base, input type, call)``, taken after its
#: μP modules' bases are checked: every size of a check compares with the same base model, and
#: the next check of the same model too, so it is traced once (about 0.07 s a size for the MLP
#: of ``benchmarks/bench_coord_microsoft.py``, measured). ``model`` is assumed to build the same
#: module every time it is called with a size, as the program cache assumes.
BASES: ProgramCache[Any] = ProgramCache(16)


def base_shapes(model_at: Callable[[int], Any], base: int, x: jax.Array, call: tuple[Any, Any, Any]) -> Any:
    """``param_shapes`` of the base model ``model_at(base)``, after :func:`_check_bases`."""

    def build() -> Any:
        _check_bases(model_at, base, x, call)
        return param_shapes(as_model(model_at(base), *call), x)

    return BASES.get(("base model", model_at, base, jax.typeof(x), call), build)


def trainee(
    model_at: Callable[[int], Any],
    size: int,
    x: jax.Array,
    *,
    base: int | None,
    parametrization: str,
    optimizer: Optimizer,
    init: Init | None = None,
    fans: Any = None,
    blocks: Any = None,
    depth: tuple[int, int, float] | None = None,
    zero_query: bool = False,
    zero_output: bool = False,
    call: tuple[Any, Any, Any] = (None, None, None),
    watch: bool = False,
    draws: Any = "fan_in",
    sweep_size: tuple[int, int] | None = None,
) -> tuple[Trainee, Layout]:
    """The model ``model_at(size)`` and its layers (one abstract pass), its parameters' shapes
    against ``model_at(base)`` under μP (against itself under SP, or with ``base=None``), with
    the stacks and einsum fans the trace found (:meth:`mc._model.Layout.infshape_options`).

    Under μP (with a ``base``) the bases the model's μP modules state are checked against
    the base model (:func:`_check_bases`). ``optimizer``: ``"adam"`` (``mup.adamw``, with the
    depth rules of ``depth``), ``"sgd"`` (``mup.sgd``) or ``(lr, shapes) -> optimizer``;
    ``init``: ``(params, shapes) -> params`` instead of ``mup.rescale`` (μP) or the draw
    itself (SP); ``zero_query``, ``zero_output``: under μP, attention query kernels and output
    weights start at zero (microsoft/mup's advice); ``call``: ``(method, call_kwargs,
    output)``, how the model is called; ``watch``: the layout records update effects and
    attention logits too (``mc.verify``); ``draws``: how the model draws its parameters
    (``mup.rescale``'s ``draws``); ``sweep_size``: ``(size, base)`` of the sweep, passed as
    ``size=`` to an ``optimizer`` function that takes a ``size`` keyword (a rule for the swept
    axis, as ``mup.adamw(..., batch=size)``)."""
    m = as_model(model_at(size), *call)
    layout = trace_layout(m, x, watch=watch)
    target = param_shapes(m, x)
    if parametrization == "mup" and base is not None:
        reference = base_shapes(model_at, base, x, call)
        # at the base size nothing differs from the base: a model twice as wide tells which
        # axes grow (every parameter's role, which mup.muon reads), and changes no multiplier
        delta = param_shapes(as_model(model_at(2 * base), *call), x) if size == base else None
    else:
        reference, delta = target, None
    shapes = mup.infshapes(reference, target, delta, blocks=blocks, **layout.infshape_options(fans))
    if init is not None:
        start = functools.partial(_user_init, init, shapes)
    elif parametrization == "mup":
        start = functools.partial(mup.rescale, shapes=shapes, draws=draws, zero_query=zero_query,
                                  zero_output=zero_output)  # fmt: skip
    else:
        start = _identity
    if callable(optimizer) and sweep_size is not None and takes_size(optimizer):
        make = functools.partial(_user_optimizer_of_size, optimizer, shapes, sweep_size)
    elif callable(optimizer):
        make = functools.partial(_user_optimizer, optimizer, shapes)
    elif optimizer == "adam":
        make = functools.partial(_adamw, shapes=shapes, depth=depth)
    else:
        make = functools.partial(_sgd, shapes=shapes)
    return Trainee(m, shapes, start, make), layout


def _identity(params: Any) -> Any:
    return params


def _user_init(init: Init, shapes: Any, params: Any) -> Any:
    return init(params, shapes)


def _user_optimizer(optimizer: Callable[[Any, Any], optax.GradientTransformation], shapes: Any, lr: Any):
    return optimizer(lr, shapes)


def takes_size(optimizer: Callable[..., Any]) -> bool:
    """Whether an optimizer function takes a ``size`` keyword (``(lr, shapes, size) -> ...``)."""
    try:
        parameters = inspect.signature(optimizer).parameters
    except (TypeError, ValueError):  # a builtin or C callable: no signature to read
        return False
    size = parameters.get("size")
    return size is not None and size.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _user_optimizer_of_size(optimizer: Callable[..., Any], shapes: Any, sweep_size: tuple[int, int], lr: Any):
    return optimizer(lr, shapes, size=sweep_size)


def _adamw(lr: Any, *, shapes: Any, depth: Any) -> optax.GradientTransformation:
    return mup.adamw(lr, shapes=shapes, depth=depth)


def _sgd(lr: Any, *, shapes: Any) -> optax.GradientTransformation:
    return mup.sgd(lr, shapes=shapes)


__all__ = [
    "BASES",
    "LOSSES",
    "OPTIMIZERS",
    "PARAMETRIZATIONS",
    "Trainee",
    "base_shapes",
    "check_optimizer",
    "check_sizes",
    "loss_function",
    "optimizer_name",
    "takes_size",
    "trainee",
]
