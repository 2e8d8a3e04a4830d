"""The study's four networks (SPEC section 4), in flax.linen, and the schemes they train with.

Every dense/conv kernel takes its ``kernel_init`` from a mapping of layer *roles* to
flaxinit initializers, so one network definition serves every scheme; biases start at
zero. The architectures of networks 2-4 are not given by the article; these are small,
standard choices (documented in ``docs/study.md``):

* ``counting``: 5 -> 8 -> 8 -> 5, sigmoid after every layer, half squared error, SGD on
  one example per step, learning rate 0.1 (exactly as the spec says).
* ``mnist-cnn``: conv 3x3x8, ReLU, max-pool 2; conv 3x3x16, ReLU, max-pool 2; dense 10;
  softmax cross-entropy; SGD, batches of 32, learning rate 0.05.
* ``mnist-dense``: 784 -> 64 -> 64 -> 10, sigmoid after every layer, half squared error
  against one-hot targets, SGD on one example per step, learning rate 0.1.
* ``hamlet-rnn``: an Elman RNN, one-hot characters -> 128 tanh units -> softmax over the
  vocabulary; cross-entropy per character; SGD with momentum 0.9, batches of 16
  sequences of 32 characters, learning rate 0.05, global-norm clipping at 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import flaxinit

Roles = Mapping[str, flaxinit.Initializer]

#: The study's four networks, in the order the CLI and the report run them.
NETWORKS = ("counting", "mnist-cnn", "mnist-dense", "hamlet-rnn")
#: The article's five schemes, named as ``flaxinit.get`` names them.
STUDY_SCHEMES = ("xavier_standard", "xavier_normalized", "letkeman_standard", "letkeman_normalized", "kaiming_normal")


def arms_for(network: str) -> dict[str, Roles]:
    """Scheme arms of a network: arm name -> initializer per layer role.

    For the RNN, Letkeman always uses the Active Node Method on the one-hot input layer
    (as the article does); Xavier and Kaiming appear without and with it (``+anm``).
    """
    arms: dict[str, Roles] = {}
    for name in STUDY_SCHEMES:
        init = flaxinit.get(name)
        if network == "hamlet-rnn" and name.startswith("letkeman"):
            arms[name] = {"default": init, "input": flaxinit.get(name, fan_in=1)}
        else:
            arms[name] = {"default": init}
    if network == "hamlet-rnn":
        for name in ("xavier_standard", "kaiming_normal"):
            arms[f"{name}+anm"] = {"default": flaxinit.get(name), "input": flaxinit.get(name, fan_in=1)}
    return arms


def _role(roles: Roles, role: str) -> flaxinit.Initializer:
    return roles.get(role, roles["default"])


class CountingNet(nn.Module):
    roles: Roles

    @nn.compact
    def __call__(self, x):
        for width in (8, 8, 5):
            x = nn.sigmoid(nn.Dense(width, kernel_init=_role(self.roles, "default"))(x))
        return x


class PatchConv(nn.Module):
    """A stride-1, SAME-padded conv computed as patches @ kernel.

    Same parameters (a ``(kh, kw, in, out)`` kernel, so conv fans) and same outputs as
    ``nn.Conv``. Under ``vmap`` over runs the work becomes a batched matrix product,
    which CPUs run far faster than the grouped convolution that vmapping ``nn.Conv``
    over its kernel produces.
    """

    features: int
    kernel_size: tuple[int, int]
    kernel_init: flaxinit.Initializer

    @nn.compact
    def __call__(self, x):  # [..., H, W, C]
        kh, kw = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        h, w = x.shape[-3], x.shape[-2]
        # SAME padding as lax/flax: (k - 1) // 2 before, k // 2 after (the extra row/column after, for even k)
        pad = [(0, 0)] * (x.ndim - 3) + [((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)]
        padded = jnp.pad(x, pad)
        # patches[..., y, x, (i, j, c)] = padded[..., y + i, x + j, c]: shifted slices, no conv op
        patches = jnp.concatenate([padded[..., i : i + h, j : j + w, :] for i in range(kh) for j in range(kw)], axis=-1)
        return patches @ kernel.reshape(-1, self.features) + bias


def max_pool_2x2(x):
    """2x2 max-pooling by reshape (cheap to differentiate under vmap)."""
    *lead, h, w, c = x.shape
    return x[..., : h // 2 * 2, : w // 2 * 2, :].reshape(*lead, h // 2, 2, w // 2, 2, c).max(axis=(-4, -2))


class MnistCNN(nn.Module):
    roles: Roles

    @nn.compact
    def __call__(self, x):
        x = x[..., None]
        for channels in (8, 16):
            x = PatchConv(channels, (3, 3), kernel_init=_role(self.roles, "default"))(x)
            x = max_pool_2x2(nn.relu(x))
        return nn.Dense(10, kernel_init=_role(self.roles, "default"))(x.reshape(*x.shape[:-3], -1))


class MnistDense(nn.Module):
    roles: Roles

    @nn.compact
    def __call__(self, x):
        x = x.reshape(*x.shape[:-2], -1)
        for width in (64, 64, 10):
            x = nn.sigmoid(nn.Dense(width, kernel_init=_role(self.roles, "default"))(x))
        return x


class ElmanCell(nn.Module):
    """One step of the Elman RNN, ``h' = tanh(x + h W)``, with its recurrent kernel ``W``.

    :class:`CharRNN` scans this cell over time (``nn.scan`` of a module, as ``nn.RNN``
    does), so ``W`` is created by the scanned module itself, outside the loop body's trace.
    """

    hidden: int
    kernel_init: flaxinit.Initializer

    @nn.compact
    def __call__(self, carry, x):
        kernel = self.param("kernel", self.kernel_init, (self.hidden, self.hidden), jnp.float32)
        h = jnp.tanh(x + carry @ kernel)
        return h, h


class CharRNN(nn.Module):
    """Elman RNN over one-hot characters; returns logits for the next character."""

    roles: Roles
    vocab: int
    hidden: int = 128

    @nn.compact
    def __call__(self, codes):  # [T] int codes -> [T, vocab] logits
        w_in = nn.Dense(self.hidden, kernel_init=_role(self.roles, "input"), name="input")
        w_out = nn.Dense(self.vocab, kernel_init=_role(self.roles, "default"), name="output")
        inputs = w_in(jax.nn.one_hot(codes, self.vocab))  # one-hot input, like the article
        scan = nn.scan(ElmanCell, variable_broadcast="params", split_rngs={"params": False})
        recurrent = scan(self.hidden, _role(self.roles, "default"), name="recurrent")
        _, hs = recurrent(jnp.zeros(self.hidden), inputs)
        return w_out(hs)


def half_squared_error(out, target):
    return 0.5 * jnp.sum((out - target) ** 2, axis=-1)


@dataclasses.dataclass(frozen=True)
class Setup:
    """Everything that defines training one network (but not its data or epochs)."""

    build: Callable[[Roles], nn.Module]
    loss: Callable  # (outputs, targets) -> per-example loss
    correct: Callable  # (outputs, targets) -> per-example bool
    batch_size: int
    optimizer: optax.GradientTransformation


def _bits_correct(out, target):
    return jnp.all((out > 0.5) == (target > 0.5), axis=-1)


def _argmax_correct(out, labels):
    return jnp.argmax(out, -1) == labels


def _onehot_argmax_correct(out, target):
    return jnp.argmax(out, -1) == jnp.argmax(target, -1)


def _cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def _sequence_cross_entropy(logits, labels):
    return jnp.mean(_cross_entropy(logits, labels), axis=-1)


def _sequence_correct(logits, labels):
    return jnp.mean(jnp.argmax(logits, -1) == labels, axis=-1)


def setup_for(network: str, vocab: int = 0, lr: float | None = None) -> Setup:
    """The training setup of ``network`` (learning rate overridable)."""
    if network == "counting":
        return Setup(CountingNet, half_squared_error, _bits_correct, 1, optax.sgd(lr or 0.1))
    if network == "mnist-cnn":
        return Setup(MnistCNN, _cross_entropy, _argmax_correct, 32, optax.sgd(lr or 0.05))
    if network == "mnist-dense":
        return Setup(MnistDense, half_squared_error, _onehot_argmax_correct, 1, optax.sgd(lr or 0.1))
    if network == "hamlet-rnn":
        opt = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(lr or 0.05, momentum=0.9))
        return Setup(lambda roles: CharRNN(roles, vocab), _sequence_cross_entropy, _sequence_correct, 16, opt)
    raise ValueError(f"unknown network {network!r}")


def audit_cnn(kernel_init: flaxinit.Initializer) -> nn.Module:
    """The study's MNIST CNN with every kernel from ``kernel_init``, for ``mc``'s audit of a user model.

    ``python -m mc audit --model experiments.networks:audit_cnn --input-shape 16,28,28`` (from a
    clone: ``experiments`` is not installed) feeds it a fresh standard-normal batch per iteration.
    """
    return MnistCNN({"default": kernel_init})


def audit_rnn(kernel_init: flaxinit.Initializer, vocab: int = 32, length: int = 64) -> tuple[nn.Module, jax.Array]:
    """The study's character RNN with every kernel from ``kernel_init``, and a fixed sequence of symbols.

    ``python -m mc audit --model experiments.networks:audit_rnn`` (from a clone) audits it on
    the codes ``0, 1, ..., vocab - 1, 0, 1, ...`` (``length`` of them).
    """
    return CharRNN({"default": kernel_init, "input": kernel_init}, vocab), jnp.arange(length) % vocab
