"""Reference models for ``python -m mc audit``, and loading a user's own.

Each reference model is a ``flax.linen`` module built from a :class:`Spec` (the scheme for
the kernels the model leaves to its caller, and the sizes); each layer is a submodule, so
the audit sees its output after the activation. Residual stacks apply their blocks one by
one (not scanned), so each block is a layer of the audit.

========================  =========================================================================
name                      model
========================  =========================================================================
``mlp``                   ``depth`` layers ``activation(Dense(width))``, kernels from the scheme
``resnet``                ``depth`` residual blocks ``h + Dense(act(Dense(h)))``, no normalization
``resnet-fixup``          the same with Fixup blocks (:class:`flaxinit.blocks.linen.FixupBlock`)
``resnet-rezero``         ReZero blocks (:class:`flaxinit.blocks.linen.ReZeroBlock`), kernels from the scheme
``transformer``           ``depth`` encoder layers without LayerNorm, plain Xavier
``transformer-tfixup``    the same layers with T-Fixup's scaling
========================  =========================================================================

The training study's networks are not among them: they live in ``experiments/``, which
runs from a clone of the repository and is not installed. From a clone, audit them as a
user's model: ``--model experiments.networks:audit_cnn`` or ``experiments.networks:audit_rnn``.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

import flaxinit
from flaxinit.blocks import linen as blocks
from mc._protocols import activation_function


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a reference model is built from (the CLI's ``--depth --width --activation --batch``)."""

    scheme: flaxinit.Initializer
    depth: int = 20
    width: int = 128
    activation: str | Callable[[jax.Array], jax.Array] = "relu"
    batch: int = 16


class _Layer(nn.Module):
    """``activation(Dense(features))``: one audited layer (its output is post-activation)."""

    features: int
    activation: Callable[[jax.Array], jax.Array]
    kernel_init: Any

    @nn.compact
    def __call__(self, x):
        return self.activation(nn.Dense(self.features, kernel_init=self.kernel_init)(x))


class DeepMLP(nn.Module):
    """``depth`` layers ``activation(Dense(width))``, each its own module, so the audit records
    every post-activation output (:func:`mc.width_model`'s ``MLP``, the μP checks' model,
    records its ``Dense`` outputs and ends in a readout)."""

    depth: int
    width: int
    activation: Callable[[jax.Array], jax.Array]
    kernel_init: Any

    @nn.compact
    def __call__(self, x):
        for i in range(self.depth):
            x = _Layer(self.width, self.activation, self.kernel_init, name=f"layer_{i}")(x)
        return x


class _Residual(nn.Module):
    """``h + Dense(act(Dense(h)))``."""

    features: int
    activation: Callable[[jax.Array], jax.Array]
    kernel_init: Any

    @nn.compact
    def __call__(self, h):
        inner = self.activation(nn.Dense(self.features, kernel_init=self.kernel_init, name="dense_0")(h))
        return h + nn.Dense(self.features, kernel_init=self.kernel_init, name="dense_1")(inner)


class ResidualStack(nn.Module):
    """A stem ``Dense(width)``, then ``depth`` blocks made by ``block(i)``."""

    depth: int
    width: int
    block: Callable[[int], nn.Module]

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(self.width, kernel_init=flaxinit.xavier_normalized(), name="stem")(x)
        for i in range(self.depth):
            h = self.block(i)(h)
        return h


class Encoder(nn.Module):
    depth: int
    width: int
    tfixup: bool
    activation: Callable[[jax.Array], jax.Array]

    @nn.compact
    def __call__(self, x):
        heads = 4 if self.width % 4 == 0 else 1
        for i in range(self.depth):
            layer = blocks.TFixupEncoderLayer(
                self.width, heads, 2 * self.width, self.depth, self.tfixup, self.activation, name=f"layer_{i}"
            )
            x = layer(x)
        return x


def _normal(*shape: int) -> tuple[jax.Array, bool]:
    return jnp.zeros(shape, jnp.float32), True  # a fresh standard-normal batch of this shape per iteration


def _mlp(spec: Spec, act) -> tuple[Any, jax.Array, bool]:
    return (DeepMLP(spec.depth, spec.width, act, spec.scheme), *_normal(spec.batch, spec.width))


def _resnet(kind: str) -> Callable[[Spec, Any], tuple[Any, jax.Array, bool]]:
    def build(spec: Spec, act):
        def block(i: int) -> nn.Module:
            name = f"block_{i}"
            if kind == "fixup":
                return blocks.FixupBlock(spec.width, spec.depth, activation=act, name=name)
            if kind == "rezero":
                return blocks.ReZeroBlock(spec.width, act, spec.scheme, name=name)
            return _Residual(spec.width, act, spec.scheme, name=name)

        return (ResidualStack(spec.depth, spec.width, block), *_normal(spec.batch, spec.width))

    return build


def _transformer(tfixup: bool) -> Callable[[Spec, Any], tuple[Any, jax.Array, bool]]:
    def build(spec: Spec, act):
        return (Encoder(spec.depth, spec.width, tfixup, act), *_normal(spec.batch, 8, spec.width))

    return build


#: name -> builder(spec, activation) -> (model, inputs, fresh_inputs)
MODELS: dict[str, Callable[[Spec, Any], tuple[Any, jax.Array, bool]]] = {
    "mlp": _mlp,
    "resnet": _resnet("plain"),
    "resnet-fixup": _resnet("fixup"),
    "resnet-rezero": _resnet("rezero"),
    "transformer": _transformer(False),
    "transformer-tfixup": _transformer(True),
}


def import_factory(name: str, choices: Sequence[str] = ()) -> Callable[..., Any]:
    """A user's model factory from ``package.module:factory`` (the CLI's ``--model``).

    Args:
      name: ``package.module:factory``; the module is imported as ``import`` would (from
        ``sys.path``: the working directory when run as ``python -m mc``).
      choices: the built-in models' names the caller also accepts (for the message).

    Raises:
      ValueError: ``name`` is not of that form, the module or its attribute cannot be
        loaded, or the attribute is not callable.

    Examples:
      >>> from mc._models import import_factory
      >>> import_factory("mc._width_models:width_model").__name__
      'width_model'
    """
    module_name, colon, attr = name.partition(":")
    if not colon or not module_name or not attr:
        known = f"one of {', '.join(choices)} or " if choices else ""
        raise ValueError(f"model must be {known}package.module:factory, got {name!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"model {name!r}: cannot load it ({err})") from None
    if not callable(factory):
        raise ValueError(f"model {name!r}: {type(factory).__name__} is not callable (a factory is a function)")
    return factory


class ReferenceModel(NamedTuple):
    """A model to audit, with what to feed it."""

    model: Any  #: a ``flax.linen`` Module or a ``flax.nnx`` factory ``rngs -> Module``
    inputs: jax.Array  #: the input batch, or an example of the fresh batches' shape
    fresh_inputs: bool  #: draw a new standard-normal batch of ``inputs``' shape per iteration


def reference_model(
    name: str,
    scheme: flaxinit.Initializer,
    *,
    depth: int = 20,
    width: int = 128,
    activation: str | Callable[[jax.Array], jax.Array] = "relu",
    batch: int = 16,
    input_shape: Sequence[int] | None = None,
) -> ReferenceModel:
    """A reference model of ``python -m mc audit`` by name, or a user's ``package.module:factory``.

    The names (the CLI's ``--model``): ``mlp``, ``resnet``, ``resnet-fixup``, ``resnet-rezero``,
    ``transformer``, ``transformer-tfixup``. Each is a ``flax.linen`` module whose kernels
    come from ``scheme`` (Fixup and T-Fixup use their own), and whose layers are
    submodules, so :func:`mc.audit` sees each one. A factory is called as
    ``factory(kernel_init=scheme)`` (or without arguments, if it takes none) and returns a
    ``flax.linen`` Module or a ``flax.nnx`` factory ``rngs -> Module``, or a
    ``(model, inputs)`` pair; a model alone is fed a fresh standard-normal batch of
    ``input_shape``.

    Args:
      name: a reference model's name or ``package.module:factory``.
      scheme: the initializer of the kernels the model leaves to its caller.
      depth: layers (``mlp``), blocks (``resnet*``) or encoder layers (``transformer*``).
      width: features per layer (the model dimension of a Transformer).
      activation: a ``jax.nn`` name or an elementwise callable.
      batch: rows of the fresh input batches (sequences, for a Transformer).
      input_shape: the input batch's shape, for a user's model returned without inputs.

    Returns:
      A :class:`ReferenceModel` ``(model, inputs, fresh_inputs)``, ready for
      ``mc.audit(model, inputs, iterations, key=..., fresh_inputs=fresh_inputs)``.

    Raises:
      ValueError: an unknown name, a factory that cannot be imported, or no inputs.

    Examples:
      >>> import flaxinit, mc
      >>> model, inputs, fresh = mc.reference_model("mlp", flaxinit.he_normal(), depth=3, width=8, batch=2)
      >>> type(model).__name__, inputs.shape, fresh
      ('DeepMLP', (2, 8), True)
    """
    spec = Spec(scheme, depth, width, activation, batch)
    _, act = activation_function(activation)
    if name in MODELS:
        return ReferenceModel(*MODELS[name](spec, act))
    factory = import_factory(name, MODELS)
    try:
        made = factory(kernel_init=scheme)
    except TypeError:
        made = factory()
    if isinstance(made, tuple) and len(made) == 2:
        return ReferenceModel(made[0], jnp.asarray(made[1]), False)
    if input_shape is None:
        raise ValueError(
            f"--model {name!r} returns a model without inputs: give input_shape (--input-shape), like (16, 128)"
        )
    return ReferenceModel(made, *_normal(*input_shape))
