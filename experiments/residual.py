"""Residual schemes without normalization, trained: a deep MLP and a small Transformer.

(i)  A residual MLP without normalization (64 two-layer blocks, 128 weight layers) on a
     synthetic regression task (a random tanh teacher), trained from four inits with the
     same seeds and data order: plain He (``x + f(x)``), Fixup, SkipInit (alpha = 0) and
     ReZero (128 one-layer blocks, so the same number of weight layers). Two optimizers:
     SGD with momentum (as in the Fixup paper) and Adam.
(ii) A Transformer encoder without LayerNorm and without warm-up on a toy sequence task
     (reverse a sequence of random tokens), with T-Fixup's init against the same model
     without T-Fixup's scaling (plain Xavier, embeddings N(0, d^-1/2)), at two Adam
     learning rates.

Every run is ``jit(vmap over seeds(lax.scan over steps))``, each step the project's one
``flaxinit.tooling.train_step``. Losses are recorded every step and stored as window
means; non-finite losses are stored as null and counted as divergence. ``python -m
experiments residual`` (``--quick`` for a smoke run, ``--seeds``, ``--out``) writes
``results.json`` and ``summary.md`` (atomically).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import flaxinit
from flaxinit import tooling
from flaxinit.blocks import linen as blocks

# --- configuration --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    in_features: int = 16
    teacher_width: int = 64
    width: int = 32
    num_blocks: int = 64  # two-layer blocks (ReZero: twice as many one-layer blocks)
    train_size: int = 4096
    test_size: int = 4096
    batch: int = 64
    steps: int = 1000
    record_every: int = 25
    seeds: tuple[int, ...] = (0, 1, 2)
    optimizers: tuple[tuple[str, float], ...] = (("sgd_momentum", 0.01), ("adam", 1e-3))


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int = 16
    length: int = 12
    d_model: int = 32
    num_heads: int = 4
    d_ff: int = 64
    num_layers: int = 6
    batch: int = 32
    steps: int = 600
    record_every: int = 20
    test_batch: int = 512
    seeds: tuple[int, ...] = (0, 1, 2)
    learning_rates: tuple[float, ...] = (1e-3, 3e-3)


def quick_configs(mlp: MLPConfig, transformer: TransformerConfig) -> tuple[MLPConfig, TransformerConfig]:
    return (
        dataclasses.replace(
            mlp, steps=100, record_every=10, seeds=(0, 1), train_size=1024, test_size=1024, optimizers=(("adam", 1e-3),)
        ),
        dataclasses.replace(
            transformer, num_layers=2, steps=100, record_every=10, seeds=(0, 1), test_batch=128, learning_rates=(1e-3,)
        ),
    )


# --- models -----------------------------------------------------------------------------------


class PlainBlock(nn.Module):
    """The baseline: ``x + dense_1(relu(dense_0(x)))`` with He init everywhere, nothing zeroed or scaled."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        he = flaxinit.kaiming_normal()
        h = jax.nn.relu(nn.Dense(self.features, kernel_init=he, name="dense_0")(x))
        return x + nn.Dense(self.features, kernel_init=he, name="dense_1")(h)


class PlainResNet(nn.Module):
    """He stem + ReLU, ``num_blocks`` :class:`PlainBlock` s, Xavier head: the SkipInit network with alpha fixed at 1."""

    features: int
    num_blocks: int
    num_outputs: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = jax.nn.relu(nn.Dense(self.features, kernel_init=flaxinit.kaiming_normal(), name="stem")(x))
        body = nn.scan(
            lambda module, carry, _: (module(carry), None),
            variable_axes={"params": 0},
            split_rngs={"params": True},
            length=self.num_blocks,
        )
        h = body(PlainBlock(self.features, name="blocks"), h, None)[0]
        return nn.Dense(self.num_outputs, kernel_init=flaxinit.xavier_normalized(), name="head")(h)


def mlp_models(cfg: MLPConfig) -> dict[str, nn.Module]:
    w, n = cfg.width, cfg.num_blocks
    return {
        "plain_he": PlainResNet(w, n, 1),
        "fixup": blocks.FixupResNet(w, n, 1),
        "skipinit": blocks.SkipInitResNet(w, n, 1),
        "rezero": blocks.ReZeroResNet(w, 2 * n, 1),
    }


def optimizer(name: str, learning_rate: float) -> optax.GradientTransformation:
    if name == "sgd_momentum":
        return optax.sgd(learning_rate, momentum=0.9)
    if name == "adam":
        return optax.adam(learning_rate)
    raise ValueError(f"unknown optimizer {name!r}")


# --- training ---------------------------------------------------------------------------------


def train(
    model: nn.Module,
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array],
    sample_batch: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
    evaluate: Callable[[Callable[[jax.Array], jax.Array]], dict[str, jax.Array]],
    opt: optax.GradientTransformation,
    steps: int,
    seeds: Sequence[int],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Trains one model per seed: ``jit(vmap(scan))``. Returns per-step losses (seeds, steps) and final metrics.

    Seed ``s`` uses ``key(s)`` split into an init key and a data key, so every model sees
    the same batches in the same order for a given seed.
    """

    def run(key: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        init_key, data_key = jax.random.split(key)
        x0, _ = sample_batch(data_key)
        params = model.init(init_key, x0)["params"]

        step = tooling.train_step(lambda p, x, y: loss_fn(model.apply({"params": p}, x), y), opt)

        def scan_step(carry: tuple[Any, Any], step_key: jax.Array) -> tuple[tuple[Any, Any], jax.Array]:
            p, state, loss = step(*carry, *sample_batch(step_key))
            return (p, state), loss

        (params, _), losses = jax.lax.scan(scan_step, (params, opt.init(params)), jax.random.split(data_key, steps))
        return losses, evaluate(lambda x: model.apply({"params": params}, x))

    keys = jnp.stack([jax.random.key(s) for s in seeds])
    losses, metrics = jax.jit(jax.vmap(run))(keys)
    return np.asarray(losses, np.float64), {k: np.asarray(v, np.float64) for k, v in metrics.items()}


def window_means(losses: np.ndarray, every: int) -> np.ndarray:
    """Mean of each window of ``every`` steps (NaN if any loss in it is not finite)."""
    seeds, steps = losses.shape
    every = max(1, min(every, steps))
    usable = steps // every * every
    windows = losses[:, :usable].reshape(seeds, -1, every)
    with np.errstate(invalid="ignore", over="ignore"):
        means = windows.mean(axis=-1)
    means[~np.isfinite(windows).all(axis=-1)] = np.nan
    return means


def first_non_finite(losses: np.ndarray) -> list[int | None]:
    out = []
    for row in losses:
        bad = np.flatnonzero(~np.isfinite(row))
        out.append(int(bad[0]) if bad.size else None)
    return out


def summarize_run(losses: np.ndarray, metrics: dict[str, np.ndarray], every: int, seconds: float) -> dict[str, Any]:
    return {
        "record_every": every,
        "curve": window_means(losses, every).tolist(),  # (seeds, windows)
        "first_loss": losses[:, 0].tolist(),
        "final_window_loss": window_means(losses, every)[:, -1].tolist(),
        "first_non_finite_step": first_non_finite(losses),
        "metrics": {k: v.tolist() for k, v in metrics.items()},
        "seconds": seconds,
    }


# --- (i) deep residual MLP ---------------------------------------------------------------------


def teacher_data(cfg: MLPConfig) -> tuple[jax.Array, ...]:
    """A random one-hidden-layer tanh teacher; targets scaled to unit variance on the training set."""
    k_w1, k_w2, k_train, k_test = jax.random.split(jax.random.key(1234), 4)
    w1 = jax.random.normal(k_w1, (cfg.in_features, cfg.teacher_width)) * 2 / math.sqrt(cfg.in_features)
    w2 = jax.random.normal(k_w2, (cfg.teacher_width, 1))

    def teacher(x: jax.Array) -> jax.Array:
        return jnp.tanh(x @ w1) @ w2

    x_train = jax.random.normal(k_train, (cfg.train_size, cfg.in_features))
    x_test = jax.random.normal(k_test, (cfg.test_size, cfg.in_features))
    y_train, y_test = teacher(x_train), teacher(x_test)
    mean, std = y_train.mean(), y_train.std()
    return x_train, (y_train - mean) / std, x_test, (y_test - mean) / std


def run_mlp(cfg: MLPConfig, log: Callable[[str], None]) -> dict[str, Any]:
    x_train, y_train, x_test, y_test = teacher_data(cfg)

    def sample_batch(key: jax.Array) -> tuple[jax.Array, jax.Array]:
        idx = jax.random.randint(key, (cfg.batch,), 0, cfg.train_size)
        return x_train[idx], y_train[idx]

    def mse(pred: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.mean((pred - y) ** 2)

    def evaluate(predict: Callable[[jax.Array], jax.Array]) -> dict[str, jax.Array]:
        return {"train_mse": mse(predict(x_train), y_train), "test_mse": mse(predict(x_test), y_test)}

    results: dict[str, Any] = {}
    for opt_name, lr in cfg.optimizers:
        for name, model in mlp_models(cfg).items():
            start = time.perf_counter()
            losses, metrics = train(model, mse, sample_batch, evaluate, optimizer(opt_name, lr), cfg.steps, cfg.seeds)
            seconds = time.perf_counter() - start
            results.setdefault(f"{opt_name}_lr{lr:g}", {})[name] = summarize_run(
                losses, metrics, cfg.record_every, seconds
            )
            log(f"  mlp {opt_name} lr={lr:g} {name:9s} test mse {fmt_seeds(metrics['test_mse'])} ({seconds:.0f} s)")
    return results


# --- (ii) T-Fixup Transformer ------------------------------------------------------------------


def run_transformer(cfg: TransformerConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """Reverse a sequence of ``length`` uniform random tokens; per-token cross-entropy."""

    def sample_batch(key: jax.Array, batch: int = cfg.batch) -> tuple[jax.Array, jax.Array]:
        tokens = jax.random.randint(key, (batch, cfg.length), 0, cfg.vocab_size)
        return tokens, tokens[:, ::-1]

    def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()

    test_tokens, test_targets = sample_batch(jax.random.key(99), cfg.test_batch)

    def evaluate(predict: Callable[[jax.Array], jax.Array]) -> dict[str, jax.Array]:
        logits = predict(test_tokens)
        correct = logits.argmax(-1) == test_targets
        return {
            "test_loss": cross_entropy(logits, test_targets),
            "token_accuracy": correct.mean(),
            "sequence_accuracy": correct.all(-1).mean(),
        }

    results: dict[str, Any] = {}
    for lr in cfg.learning_rates:
        for name, tfixup in (("tfixup", True), ("no_tfixup", False)):
            model = blocks.TFixupEncoder(
                cfg.vocab_size, cfg.d_model, cfg.num_heads, cfg.d_ff, cfg.num_layers, cfg.length, tfixup=tfixup
            )
            start = time.perf_counter()
            losses, metrics = train(model, cross_entropy, sample_batch, evaluate, optax.adam(lr), cfg.steps, cfg.seeds)
            seconds = time.perf_counter() - start
            results.setdefault(f"adam_lr{lr:g}", {})[name] = summarize_run(losses, metrics, cfg.record_every, seconds)
            log(
                f"  transformer adam lr={lr:g} {name:9s} token acc {fmt_seeds(metrics['token_accuracy'])}"
                f" ({seconds:.0f} s)"
            )
    return results


# --- output -----------------------------------------------------------------------------------


def fmt_seeds(values: Any) -> str:
    """``mean ± std (n/N finite)`` over seeds, or the count of non-finite seeds."""
    arr = np.asarray(values, np.float64)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return f"non-finite ({arr.size}/{arr.size})"
    text = f"{finite.mean():.4g} ± {finite.std(ddof=1) if finite.size > 1 else 0.0:.2g}"
    return text if finite.size == arr.size else f"{text} ({arr.size - finite.size}/{arr.size} non-finite)"


def loss_columns(run: dict[str, Any], steps: int) -> tuple[list[str], list[str]]:
    """Headers and cells: the first batch's loss, then window means at 10 %, 50 % and the end of training."""
    curve = np.asarray([[np.nan if v is None else v for v in row] for row in run["curve"]], np.float64)
    every = max(1, min(run["record_every"], steps))
    windows = sorted({min(max(round(f * curve.shape[1]) - 1, 0), curve.shape[1] - 1) for f in (0.1, 0.5, 1.0)})
    headers = ["loss, step 0"] + [f"loss, steps {w * every}-{(w + 1) * every - 1}" for w in windows]
    cells = [fmt_seeds(run["first_loss"])] + [fmt_seeds(curve[:, w]) for w in windows]
    return headers, cells


def diverged(run: dict[str, Any]) -> str:
    steps = run["first_non_finite_step"]
    bad = [s for s in steps if s is not None]
    return "0" if not bad else f"{len(bad)}/{len(steps)} (from step {min(bad)})"


def _tables(part: dict[str, Any], steps: int, metrics: dict[str, str]) -> list[str]:
    """One table per optimizer setting: per init, the loss columns, the ``metrics`` (header: key) and divergence."""
    lines = []
    for opt_key, runs in part.items():
        lines += [f"### {opt_key}", ""]
        for i, (name, run) in enumerate(runs.items()):
            headers, cells = loss_columns(run, steps)
            cells += [fmt_seeds(run["metrics"][key]) for key in metrics.values()]
            if i == 0:
                lines += ["| init | " + " | ".join([*headers, *metrics, "diverged seeds"]) + " |"]
                lines += ["|---|" + "---|" * (len(headers) + len(metrics) + 1)]
            lines += [f"| {name} | " + " | ".join([*cells, diverged(run)]) + " |"]
        lines += [""]
    return lines


def markdown(results: dict[str, Any]) -> str:
    mlp_cfg, tf_cfg = results["config"]["mlp"], results["config"]["transformer"]
    lines = [
        "# Residual schemes without normalization: measured",
        "",
        f"Generated by `python -m experiments residual{' --quick' if results['quick'] else ''}` "
        f"on {machine_text(results['environment']['machine'])}, {results['environment']['seconds']:.0f} s. "
        f"Mean ± std over {len(mlp_cfg['seeds'])} seeds.",
        "",
        f"## (i) Residual MLP, {mlp_cfg['num_blocks']} two-layer blocks, width {mlp_cfg['width']}",
        "",
        f"Regression on a random tanh teacher (unit-variance targets: MSE 1 = predicting the mean), "
        f"batch {mlp_cfg['batch']}, {mlp_cfg['steps']} steps. ReZero has {2 * mlp_cfg['num_blocks']} "
        f"one-layer blocks. Loss columns: training loss averaged over {mlp_cfg['record_every']} steps.",
        "",
    ]
    lines += _tables(results["mlp"], mlp_cfg["steps"], {"test MSE": "test_mse"})
    lines += [
        f"## (ii) Transformer encoder, {tf_cfg['num_layers']} layers, no LayerNorm, no warm-up",
        "",
        f"Reverse {tf_cfg['length']} random tokens (vocabulary {tf_cfg['vocab_size']}; chance accuracy "
        f"{1 / tf_cfg['vocab_size']:.3f}), d_model {tf_cfg['d_model']}, {tf_cfg['num_heads']} heads, d_ff "
        f"{tf_cfg['d_ff']}, batch {tf_cfg['batch']}, {tf_cfg['steps']} Adam steps at a constant rate. Accuracies "
        f"on {tf_cfg['test_batch']} held-out sequences after training.",
        "",
    ]
    lines += _tables(
        results["transformer"], tf_cfg["steps"], {"token acc": "token_accuracy", "sequence acc": "sequence_accuracy"}
    )
    return "\n".join(lines)


def machine_text(machine: dict[str, Any]) -> str:
    """The machine of a run, in a few words, for a summary's first lines."""
    return f"{machine['cpu']} ({machine['cpu_count']} cores, {machine['backend']}, jax {machine['jax']})"


def run(quick: bool = False, seeds: Sequence[int] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Both parts of the demo; the results as stored in ``results.json`` (strict-JSON values)."""
    mlp_cfg, tf_cfg = MLPConfig(), TransformerConfig()
    if quick:
        mlp_cfg, tf_cfg = quick_configs(mlp_cfg, tf_cfg)
    if seeds is not None:
        mlp_cfg, tf_cfg = (dataclasses.replace(c, seeds=tuple(seeds)) for c in (mlp_cfg, tf_cfg))
    start = time.perf_counter()
    results: dict[str, Any] = {
        "quick": quick,
        "config": {"mlp": dataclasses.asdict(mlp_cfg), "transformer": dataclasses.asdict(tf_cfg)},
        "mlp": run_mlp(mlp_cfg, log),
        "transformer": run_transformer(tf_cfg, log),
    }
    results["environment"] = {"machine": tooling.machine(), "seconds": time.perf_counter() - start}
    return tooling.to_json(results)
