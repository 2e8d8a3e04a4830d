"""Audits recurrent models with their default (orthogonal) recurrent init; run as a script.

``python tests/audit_recurrent.py linen:LSTMCell nnx:GRUCell ...`` audits ``RNN(cell)`` (and
``linen:Bidirectional``, ``nnx:Bidirectional`` an LSTM both ways) over 64 initializations
and prints one line per model: its name and the mean |a| of its output, which must be
finite. ``tests/test_real_models.py`` runs it in a fresh process with a time limit, so a
deadlock (the one jaxlib 0.10 and 0.11 have on vmapped LAPACK calls on a CPU) fails the test
instead of hanging the suite.
"""

import math
import sys

FEATURES, HIDDEN, BATCH, STEPS, ITERATIONS = 8, 16, 4, 6, 64


def _linen(name: str):
    import flax.linen as nn

    if name == "Bidirectional":
        return nn.Bidirectional(nn.RNN(nn.LSTMCell(HIDDEN)), nn.RNN(nn.LSTMCell(HIDDEN)))
    return nn.RNN(getattr(nn, name)(HIDDEN))


def _nnx(name: str):
    from flax import nnx

    def factory(rngs):
        if name == "Bidirectional":
            forward, backward = (nnx.RNN(nnx.LSTMCell(FEATURES, HIDDEN, rngs=rngs)) for _ in range(2))
            return nnx.Bidirectional(forward, backward, rngs=rngs)
        return nnx.RNN(getattr(nnx, name)(FEATURES, HIDDEN, rngs=rngs))

    factory.__name__ = name
    return factory


def main(names: list[str]) -> None:
    import jax.numpy as jnp

    import mc

    x = jnp.ones((BATCH, STEPS, FEATURES))
    for spec in names:
        api, name = spec.split(":")
        model = _linen(name) if api == "linen" else _nnx(name)
        result = mc.audit(model, x, ITERATIONS, key=0)
        output = result.layer("(output)")
        assert math.isfinite(output.mean_abs) and output.mean_abs > 0, (spec, output)
        print(spec, len(result.layers), output.mean_abs, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
