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
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from flaxinit import mup
from flaxinit.tooling import check_int
from mc._model import Layout, Model, as_model, param_shapes, trace_layout

PARAMETRIZATIONS = ("mup", "sp")
OPTIMIZERS = ("adam", "sgd")
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


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_sizes(sizes: Any, name: str) -> tuple[int, ...]:
    """Distinct positive ints, at least two (a slope or a spread needs two), in increasing order."""
    try:
        values = [check_int(s, f"each of {name}") for s in sizes]
    except TypeError:
        raise TypeError(f"{name} must be a sequence of positive ints, got {sizes!r}") from None
    if len(values) < 2 or len(set(values)) != len(values):
        raise ValueError(f"{name} must hold at least two distinct sizes, got {list(values)}")
    return tuple(sorted(values))


@dataclasses.dataclass(frozen=True)
class Trainee:
    """One model at one size: ``init(key) -> (full variables, trainable)`` and ``optimizer(lr)``."""

    model: Model
    shapes: Any
    parametrization: str
    optimizer_name: str
    depth: tuple[int, int, float] | None
    zero_query: bool = False
    zero_output: bool = False

    def init(self, key: jax.Array, x: jax.Array) -> tuple[Any, Any]:
        full = self.model.init(key, x)
        trainable = self.model.params(full)
        if self.parametrization == "mup":
            trainable = mup.rescale(trainable, self.shapes, zero_query=self.zero_query, zero_output=self.zero_output)
        return full, trainable

    def with_params(self, full: Any, trainable: Any) -> Any:
        return self.model.with_params(full, trainable)

    def optimizer(self, learning_rate: float | jax.Array) -> optax.GradientTransformation:
        if self.optimizer_name == "adam":
            return mup.adamw(learning_rate, shapes=self.shapes, depth=self.depth)
        return mup.sgd(learning_rate, shapes=self.shapes)


def trainee(
    model_at: Callable[[int], Any],
    size: int,
    x: jax.Array,
    *,
    base: int | None,
    parametrization: str,
    optimizer: str,
    fans: Any = None,
    blocks: Any = None,
    depth: tuple[int, int, float] | None = None,
    zero_query: bool = False,
    zero_output: bool = False,
    call: tuple[Any, Any, Any] = (None, None, None),
) -> tuple[Trainee, Layout]:
    """The model ``model_at(size)`` and its layers (one abstract pass), its parameters' shapes
    against ``model_at(base)`` under μP (against itself under SP, or with ``base=None``), with
    the stacks and einsum fans the trace found (:meth:`mc._model.Layout.infshape_options`);
    ``zero_query``, ``zero_output``: under μP, attention query kernels and output weights
    (the readout's kernel) start at zero (microsoft/mup's advice); ``call``: ``(method,
    call_kwargs, output)``, how the model is called."""
    m = as_model(model_at(size), *call)
    layout = trace_layout(m, x)
    target = param_shapes(m, x)
    if parametrization == "mup" and base is not None:
        reference = param_shapes(as_model(model_at(base), *call), x)
    else:
        reference = target
    shapes = mup.infshapes(reference, target, blocks=blocks, **layout.infshape_options(fans))
    return Trainee(m, shapes, parametrization, optimizer, depth, bool(zero_query), bool(zero_output)), layout


__all__ = ["LOSSES", "OPTIMIZERS", "PARAMETRIZATIONS", "Trainee", "check_sizes", "loss_function", "trainee"]
