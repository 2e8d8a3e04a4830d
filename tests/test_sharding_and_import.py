"""Sharded init for every scheme (4 CPU devices, in a subprocess), and what ``import flaxinit`` loads.

A sharded draw must equal the unsharded one bit for bit, eagerly and under ``jit``, and
carry the requested sharding, on meshes with automatic and with explicit axes.
"""

import json
import os
import subprocess
import sys
import textwrap

import flaxinit

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
                out[f"{axis_type.name}/{name}"] = [
                    bool(np.array_equal(plain, np.asarray(eager))), bool(np.array_equal(plain, np.asarray(traced))),
                    eager.sharding.is_equivalent_to(sharding, len(shape)),
                    traced.sharding.is_equivalent_to(sharding, len(shape)),
                ]
    print(json.dumps(out))
    """
)


def test_every_scheme_sharded_equals_unsharded_bit_for_bit():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", _SHARDED], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(results) == 2 * len(flaxinit.available())  # every scheme, on both kinds of mesh
    failed = {case: checks for case, checks in results.items() if not all(checks)}
    assert not failed  # [eager equal, jit equal, eager sharding, jit sharding]


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
