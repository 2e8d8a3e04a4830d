"""Benchmark: ``mc.coord_check`` and ``mc.verify`` against microsoft/mup's real ``get_coord_data``.

Run it as ``python benchmarks/bench_coord_microsoft.py --peer-python /path/to/python`` where that
Python has torch and mup installed (a separate environment: the project does not depend on
torch; ``pip install torch==2.13.0 mup``). The run is stored as
``benchmarks/results/bench_coord_microsoft.json`` (``--quick``: ``.quick.json``).

What it measures
----------------
One coordinate check of microsoft/mup's coordinate-check MLP (``Linear(3072, w)``, ReLU,
``Linear(w, w)``, ReLU, a readout), μP against base width 64, at widths 64 to 1024, 8 seeds,
3 Adam steps at learning rate 0.01 on one fixed batch of 64 rows: on one side
``get_coord_data`` (``MuAdam``, ``MuReadout``, ``set_base_shapes``; torch's CPU build, its
own threads), on the other ``mc.coord_check`` of ``mc.width_model("mlp")`` (``mup.rescale``,
``mup.adamw``), and ``mc.verify`` (the same check with every update effect recorded too).
Both record every layer's mean |a| per width, seed and step.

Each side runs in a **fresh process** per repeat and is timed twice there: its first call
(**cold**: compiling its programs, for jax; torch compiles nothing) and a second call with
another key (**warm**). Imports and building the batch are outside the timings. jax's side
is timed twice over: with JAX's persistent compilation cache off (what a first run costs),
and in another fresh process whose cache directory a previous process filled (``--
compilation-cache``, on by default on ``python -m mc``'s commands: what every later run in a
new process costs; tracing and lowering remain, XLA's compilation is read from disk). The
ratios are ``get_coord_data`` time / jax time, medians over repeats. Targets (issue 29):
cold at least 1x and warm at least 3x on a 2-core CPU.

Floors: what the check cannot do without, timed the same way (each in its own fresh
process, cold then warm, the cache off): **init** compiles and runs the model's own
``init`` for every seed at every width (``lax.map`` over the seeds, one jitted program per
width, each leaf summed so nothing is stored), and nothing else; **train** adds the training
(the model's init, ``steps - 1`` Adam steps and a last forward pass per seed, as the check
runs them) but records nothing: the check without its statistics and without μP's
bookkeeping. ``floor_ratio`` is ``get_coord_data`` time / floor time: the most any check on
jax can reach on this machine, with XLA compiling one program per width.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

from flaxinit.tooling import machine

NAME = "bench_coord_microsoft"
TARGETS = {"cold": 1.0, "warm": 3.0}
FULL = {"widths": [64, 128, 256, 512, 1024], "seeds": 8, "steps": 3, "batch": 64, "features": 3072, "classes": 10,
        "lr": 0.01, "key": 0}  # fmt: skip
QUICK = {**FULL, "widths": [32, 64, 128], "seeds": 2, "features": 64}
HERE = Path(__file__).resolve().parent

#: What both jax scripts (``_JAX_SIDE``, ``_FLOOR_SIDE``) start with: the settings, and the batch
#: built before any timing.
_BATCH = r"""
import json, sys, time
settings = json.loads(sys.argv[1])
import jax, mc
key = jax.random.key(settings["key"])
k_x, k_y = jax.random.split(key)
x = jax.random.normal(k_x, (settings["batch"], settings["features"]))
y = jax.random.randint(k_y, (settings["batch"],), 0, settings["classes"])
x.block_until_ready()
"""

_JAX_SIDE = r"""
model = mc.width_model("mlp", out_features=settings["classes"])
sizes = settings["widths"]
def check(key):
    return mc.coord_check(model, sizes, x, y, base=sizes[0], lr=settings["lr"], steps=settings["steps"],
                          seeds=settings["seeds"], key=key)
def verify(key):
    return mc.verify(model, sizes, x, y, base=sizes[0], lr=settings["lr"], steps=settings["steps"],
                     seeds=settings["seeds"], key=key)
times = {}
for name, fn in (("coord_check", check), ("verify", verify)):
    start = time.perf_counter(); fn(settings["key"]); times[name + " cold"] = time.perf_counter() - start
    start = time.perf_counter(); fn(settings["key"] + 1); times[name + " warm"] = time.perf_counter() - start
times["jax"] = jax.__version__
print(json.dumps(times))
"""

_FLOOR_SIDE = r"""
import jax.numpy as jnp, optax
from flaxinit.prng import philox_key
part = sys.argv[2]
model = mc.width_model("mlp", "sp", out_features=settings["classes"])
def program(module):
    tx = optax.adam(settings["lr"])
    def loss(params):
        return optax.softmax_cross_entropy_with_integer_labels(module.apply(params, x), y).mean()
    def one_seed(k):
        params = module.init(k, x)
        if part == "init":
            return sum(jnp.sum(leaf) for leaf in jax.tree.leaves(params))
        def step(carry, _):
            params, state = carry
            value, grads = jax.value_and_grad(loss)(params)
            updates, state = tx.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), value
        (params, _), values = jax.lax.scan(step, (params, tx.init(params)), None, length=settings["steps"] - 1)
        return jnp.concatenate([values, loss(params)[None]])
    return jax.jit(lambda keys: jax.lax.map(one_seed, keys))
from concurrent.futures import ThreadPoolExecutor
def keys_of(key):
    return jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(settings["seeds"]))
times = {}
start = time.perf_counter()
keys = keys_of(philox_key(settings["key"]))
with ThreadPoolExecutor(2) as pool:  # compiled two at a time, as mc.coord_check does
    compiling = [pool.submit(program(model(w)).lower(keys).compile) for w in settings["widths"]]
    compiled = []
    for future in compiling:  # each width runs as soon as its program is compiled
        compiled.append(future.result())
        jax.block_until_ready(compiled[-1](keys))
times[part + " cold"] = time.perf_counter() - start
start = time.perf_counter()
keys = keys_of(philox_key(settings["key"] + 1))
for c in compiled:
    jax.block_until_ready(c(keys))
times[part + " warm"] = time.perf_counter() - start
print(json.dumps(times))
"""


def _run(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fresh_env() -> dict[str, str]:
    """This environment for a jax process of the project, with JAX's persistent cache off."""
    env = {**os.environ, "PYTHONPATH": str(_common.ROOT)}
    for option in ("JAX_COMPILATION_CACHE_DIR", "FLAXINIT_TESTS_XLA_CACHE"):
        env.pop(option, None)
    return env


def jax_side(settings: dict[str, Any], cache: str | None) -> dict[str, Any]:
    """``mc.coord_check`` and ``mc.verify`` in a fresh process: cold, then warm."""
    env = _fresh_env()
    if cache is not None:
        env.update(JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")  # fmt: skip
    return _run([sys.executable, "-c", _BATCH + _JAX_SIDE, json.dumps(settings)], env)


def floor_side(settings: dict[str, Any], part: str) -> dict[str, Any]:
    """The floor ``part`` (``"init"`` or ``"train"``) in a fresh process: cold, then warm."""
    return _run([sys.executable, "-c", _BATCH + _FLOOR_SIDE, json.dumps(settings), part], _fresh_env())


def peer_side(python: str, settings: dict[str, Any]) -> dict[str, Any]:
    """microsoft/mup's ``get_coord_data`` in a fresh process: cold, then warm."""
    return _run([python, str(HERE / "coord_microsoft.py"), json.dumps(settings)])


def main(argv: Any = None) -> None:
    p = _common.parser(NAME, __doc__, default_repeats=3, quick_repeats=1)
    p.add_argument("--peer-python", default=os.environ.get("FLAXINIT_PEER_PYTHON"),
                   help="a Python with torch and mup (default $FLAXINIT_PEER_PYTHON)")  # fmt: skip
    opts = _common.parse(p, argv)
    if not opts.peer_python:
        p.error("--peer-python is required: a Python of an environment with torch and mup")
    settings = {**(QUICK if opts.quick else FULL), "key": opts.seed}
    loadavg = os.getloadavg()
    runs: list[dict[str, Any]] = []
    for repeat in range(opts.repeats):
        with tempfile.TemporaryDirectory(prefix="flaxinit-bench-cache-") as cache:
            fresh = jax_side(settings, None)
            jax_side(settings, cache)  # fills the cache
            cached = jax_side(settings, cache)
        floors = {**floor_side(settings, "init"), **floor_side(settings, "train")}
        peer = peer_side(opts.peer_python, settings)
        runs.append({"jax": fresh, "jax_cached": cached, "floor": floors, "mup": peer})
        print(f"repeat {repeat + 1}: get_coord_data {peer['cold_s']:.2f} s cold / {peer['warm_s']:.2f} s warm; "
              f"coord_check {fresh['coord_check cold']:.2f} / {fresh['coord_check warm']:.2f} s "
              f"({cached['coord_check cold']:.2f} s cold from a filled cache); verify "
              f"{fresh['verify cold']:.2f} / {fresh['verify warm']:.2f} s; floors: init {floors['init cold']:.2f} / "
              f"{floors['init warm']:.2f} s, train {floors['train cold']:.2f} / {floors['train warm']:.2f} s",
              flush=True)  # fmt: skip

    def median(side: str, key: str) -> float:
        return statistics.median(r[side][key] for r in runs)

    medians = {
        "get_coord_data cold": median("mup", "cold_s"),
        "get_coord_data warm": median("mup", "warm_s"),
        **{f"{m} {k}": median("jax", f"{m} {k}") for m in ("coord_check", "verify") for k in ("cold", "warm")},
        **{f"{m} cold, cache filled": median("jax_cached", f"{m} cold") for m in ("coord_check", "verify")},
        **{f"floor {p} {k}": median("floor", f"{p} {k}") for p in ("init", "train") for k in ("cold", "warm")},
    }
    floor_ratios = {f"{p} {k}": medians[f"get_coord_data {k}"] / medians[f"floor {p} {k}"]
                    for p in ("init", "train") for k in ("cold", "warm")}  # fmt: skip
    ratios = {
        "cold": medians["get_coord_data cold"] / medians["coord_check cold"],
        "cold, cache filled": medians["get_coord_data cold"] / medians["coord_check cold, cache filled"],
        "warm": medians["get_coord_data warm"] / medians["coord_check warm"],
        "verify warm": medians["get_coord_data warm"] / medians["verify warm"],
    }
    met = {"cold": ratios["cold"] >= TARGETS["cold"], "cold, cache filled": ratios["cold, cache filled"] >= 1.0,
           "warm": ratios["warm"] >= TARGETS["warm"]}  # fmt: skip
    meta = {**settings, "repeats": opts.repeats, "loadavg_start": list(loadavg), "torch": runs[0]["mup"]["torch"],
            "mup": runs[0]["mup"]["mup"], "torch_threads": runs[0]["mup"]["threads"], "jax": runs[0]["jax"]["jax"],
            **machine()}  # fmt: skip
    _common.store(opts, {"meta": meta, "median_s": medians, "ratio": ratios, "floor_ratio": floor_ratios,
                         "targets": TARGETS, "met": met, "runs": runs,
                         "stored": time.strftime("%Y-%m-%d")})  # fmt: skip


if __name__ == "__main__":
    main()
