"""Models written the way Flax code is written in the wild, for the audit's battery.

Each pattern is ``(model, inputs, call_kwargs)``: a linen Module or an nnx factory
``rngs -> Module``, an input batch, and the keyword arguments of its call. They use
training-mode layers (BatchNorm with batch statistics, Dropout with an RNG stream),
logically partitioned parameters, integer tokens through ``Embed`` and attention, and layer
stacks (``nn.scan``, ``nn.remat``, ``nnx.vmap`` + ``nnx.scan``).
"""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from flax import nnx

WIDTH = 16
DEPTH = 4


class LinenBatchNormMLP(nn.Module):
    """Dense -> BatchNorm -> relu, twice; ``train`` picks batch statistics or running averages."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        for _ in range(2):
            x = nn.Dense(WIDTH)(x)
            x = nn.BatchNorm(use_running_average=not train)(x)
            x = nn.relu(x)
        return nn.Dense(4)(x)


class LinenDropoutMLP(nn.Module):
    rate: float = 0.5

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.Dense(WIDTH)(x))
        x = nn.Dropout(self.rate, deterministic=not train)(x)
        return nn.Dense(4)(x)


class LinenPartitionedMLP(nn.Module):
    """Kernels boxed with logical axis names, as in t5x / MaxText."""

    @nn.compact
    def __call__(self, x):
        init = nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("embed", "mlp"))
        x = nn.relu(nn.Dense(WIDTH, kernel_init=init)(x))
        init = nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("mlp", "embed"))
        return nn.Dense(WIDTH, kernel_init=init)(x)


class LinenTokenAttention(nn.Module):
    """Token ids -> Embed -> self-attention -> readout."""

    vocab: int = 32

    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(self.vocab, WIDTH)(tokens)
        h = nn.LayerNorm()(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=WIDTH, deterministic=True)(h, h)
        return nn.Dense(self.vocab)(nn.LayerNorm()(x))


class Block(nn.Module):
    """One residual MLP block, scanned over layers as ``(carry, _) -> (carry, None)``."""

    @nn.compact
    def __call__(self, x, _=None):
        return x + nn.Dense(WIDTH)(nn.relu(nn.Dense(WIDTH)(x))), None


class LinenScanned(nn.Module):
    """``DEPTH`` blocks as one ``nn.scan`` over stacked parameters (MaxText's ``scan_layers``)."""

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(WIDTH)(x)
        stack = nn.scan(Block, variable_axes={"params": 0}, split_rngs={"params": True}, length=DEPTH)
        x, _ = stack(name="ScanBlock_0")(x, None)
        return nn.Dense(4)(x)


class LinenRemat(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(WIDTH)(x)
        for _ in range(2):
            x, _ = nn.remat(Block)()(x)
        return nn.Dense(4)(x)


class NnxBatchNormDropout(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(8, WIDTH, rngs=rngs)
        self.bn = nnx.BatchNorm(WIDTH, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.l2 = nnx.Linear(WIDTH, 4, rngs=rngs)

    def __call__(self, x):
        return self.l2(self.drop(nnx.relu(self.bn(self.l1(x)))))


class NnxPartitioned(nnx.Module):
    """Kernels annotated with mesh axes, as in flax's sharding guide."""

    def __init__(self, rngs: nnx.Rngs):
        lecun = nnx.initializers.lecun_normal()
        self.l1 = nnx.Linear(8, WIDTH, kernel_init=nnx.with_partitioning(lecun, (None, "model")), rngs=rngs)
        self.l2 = nnx.Linear(WIDTH, 4, kernel_init=nnx.with_partitioning(lecun, ("model", None)), rngs=rngs)

    def __call__(self, x):
        return self.l2(nnx.relu(self.l1(x)))


class NnxBlock(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.linear = nnx.Linear(WIDTH, WIDTH, rngs=rngs)
        self.drop = nnx.Dropout(0.1, rngs=rngs)

    def __call__(self, x):
        return x + self.drop(nnx.relu(self.linear(x)))


class NnxScanned(nnx.Module):
    """flax's ``scan_over_layers`` example: blocks created by ``nnx.vmap``, run by ``nnx.scan``."""

    def __init__(self, rngs: nnx.Rngs):
        self.embed = nnx.Linear(8, WIDTH, rngs=rngs)

        @nnx.split_rngs(splits=DEPTH)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def create(rngs):
            return NnxBlock(rngs)

        self.blocks = create(rngs)
        self.head = nnx.Linear(WIDTH, 4, rngs=rngs)

    def __call__(self, x):
        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        def forward(x, block):
            return block(x)

        return self.head(forward(self.embed(x), self.blocks))


def _x(batch=8, features=8):
    return jnp.asarray(np.random.default_rng(0).standard_normal((batch, features)), jnp.float32)


def patterns():
    """``{name: (model, inputs, call_kwargs)}``: the battery."""
    tokens = jnp.asarray(np.random.default_rng(1).integers(0, 32, (2, 6)), jnp.int32)
    return {
        "linen-batchnorm-train": (LinenBatchNormMLP(), _x(), {"train": True}),
        "linen-batchnorm-eval": (LinenBatchNormMLP(), _x(), {"train": False}),
        "linen-dropout-on": (LinenDropoutMLP(), _x(), {"train": True}),
        "linen-dropout-off": (LinenDropoutMLP(), _x(), {"train": False}),
        "linen-partitioned": (LinenPartitionedMLP(), _x(), {}),
        "linen-tokens-attention": (LinenTokenAttention(), tokens, {}),
        "linen-scan": (LinenScanned(), _x(), {}),
        "linen-remat": (LinenRemat(), _x(features=WIDTH), {}),
        "nnx-batchnorm-dropout": (NnxBatchNormDropout, _x(), {}),
        "nnx-partitioned": (NnxPartitioned, _x(), {}),
        "nnx-vmap-scan": (NnxScanned, _x(), {}),
    }
