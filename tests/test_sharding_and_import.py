"""Sharded init for every scheme (4 CPU devices, in a subprocess), and what ``import flaxinit`` loads.

A sharded draw carries the requested sharding, eagerly and under ``jit``, on meshes with
automatic and with explicit axes, and has the unsharded draw's values: bit for bit for
every scheme whose values come from the random bits by a conversion and one scaling
(uniform, constant, structured schemes), and within ``NORMAL_ULPS`` float32 roundings
for the schemes that draw from a normal or truncated normal. Their transform (jax's
``erf_inv`` polynomial, evaluated in Horner form, times the scale) is compiled per shard,
and XLA may fuse a step's multiply into its add (one rounding instead of two) in one
vectorized layout and not in another: from jax 0.12 on, jax's own sharded
``jax.random.normal`` differs from its unsharded draw by about one ulp on this CPU. One
rounding of difference per step of the ~10-step evaluation, propagated through a
well-conditioned polynomial, stays below 16 ulps of the result.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import flaxinit

NORMAL_ULPS = 16  # see the module docstring

_SHARDED = textwrap.dedent(
    """
    import json, jax, numpy as np, flaxinit
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    required = {"constant": {"value": 0.5}}
    required["variance_scaling"] = {"scale": 2.0, "mode": "fan_in", "distribution": "normal"}
    conv = {"dirac", "delta_orthogonal"}
    key, out = jax.random.key(0), {}
    for axis_type in (AxisType.Auto, AxisType.Explicit):
        mesh = jax.make_mesh((4,), ("x",), axis_types=(axis_type,))
        with jax.set_mesh(mesh):
            for name in flaxinit.available():
                init = flaxinit.get(name, **required.get(name, {}))
                shape = (3, 3, 4, 8) if name in conv else (8, 16)
                sharding = NamedSharding(mesh, P(*[None] * (len(shape) - 1), "x"))
                plain = np.asarray(init(key, shape))
                eager = init(key, shape, out_sharding=sharding)
                traced = jax.jit(lambda k: init(k, shape, out_sharding=sharding))(key)
                ulps = [float(np.max(np.abs(np.asarray(x, np.float64) - plain) / np.spacing(np.abs(plain))))
                        for x in (eager, traced)]
                out[f"{axis_type.name}/{name}"] = {
                    # sparse keeps N(0, stddev^2) values at its nonzero places
                    "normal": getattr(init, "distribution", None) in ("normal", "truncated_normal")
                    or name == "sparse",
                    "ulps": ulps,
                    "sharded": [eager.sharding.is_equivalent_to(sharding, len(shape)),
                                traced.sharding.is_equivalent_to(sharding, len(shape))],
                }
    print(json.dumps(out))
    """
)


@pytest.mark.slow  # every scheme compiled on two meshes in a fresh process: CI's second tier
def test_every_scheme_sharded_equals_unsharded_bit_for_bit():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", _SHARDED], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(results) == 2 * len(flaxinit.available())  # every scheme, on both kinds of mesh
    assert not [case for case, r in results.items() if not all(r["sharded"])]
    # [eager, jit]: ulps of the unsharded value by which the sharded draw differs
    assert not {case: r["ulps"] for case, r in results.items() if not r["normal"] and max(r["ulps"]) != 0}
    assert not {case: r["ulps"] for case, r in results.items() if r["normal"] and max(r["ulps"]) > NORMAL_ULPS}


_IMPORTS = textwrap.dedent(
    """
    import json, sys
    import flaxinit
    heavy = ("flax", "optax", "scipy", "matplotlib")
    before = sorted(m for m in heavy if m in sys.modules)
    flaxinit.lsuv
    print(json.dumps({"before": before, "after": sorted(m for m in heavy if m in sys.modules)}))
    """
)


def test_import_flaxinit_loads_jax_and_numpy_only():
    """The initializers need jax and NumPy; flax and optax load with the first model-level tool."""
    done = subprocess.run([sys.executable, "-c", _IMPORTS], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert modules["before"] == []
    assert "flax" in modules["after"]
