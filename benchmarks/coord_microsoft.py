"""One side of ``bench_coord_microsoft.py``: microsoft/mup's ``get_coord_data`` in a fresh process.

Run by the benchmark with the Python of a separate environment that has torch and mup (the
project does not depend on torch)::

    python benchmarks/coord_microsoft.py '{"widths": [64, 128], "seeds": 8, "steps": 3, ...}'

It builds microsoft/mup's coordinate-check MLP (``Linear(features, w)``, ReLU, ``Linear(w, w)``,
ReLU, ``MuReadout(w, classes)``, base shapes from width ``widths[0]``), one fixed batch, and
times two calls of ``get_coord_data`` (``MuAdam``, ``nseeds`` seeds, ``nsteps`` steps,
``cuda=False``): the first call in the process (cold) and the second (warm). It prints one line
of JSON: the times, the number of coordinate rows, torch's and mup's versions and threads.
"""

import json
import sys
import time


def main(settings: dict) -> dict:
    import mup
    import torch
    from mup import MuReadout, set_base_shapes
    from mup.coord_check import get_coord_data

    widths, seeds, steps = settings["widths"], settings["seeds"], settings["steps"]
    batch, features, classes, lr = settings["batch"], settings["features"], settings["classes"], settings["lr"]

    class MLP(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.dense_0 = torch.nn.Linear(features, width)
            self.dense_1 = torch.nn.Linear(width, width)
            self.readout = MuReadout(width, classes)

        def forward(self, x):
            return self.readout(torch.relu(self.dense_1(torch.relu(self.dense_0(x)))))

    def lazy(width):
        def build():
            return set_base_shapes(MLP(width), MLP(widths[0]))

        return build

    generator = torch.Generator().manual_seed(settings["key"])
    x = torch.randn(batch, features, generator=generator)
    y = torch.randint(0, classes, (batch,), generator=generator)
    models = {w: lazy(w) for w in widths}

    def run():
        return get_coord_data(models, [(x, y)], optimizer="adam", lr=lr, mup=True, nsteps=steps, nseeds=seeds,
                              cuda=False, show_progress=False)  # fmt: skip

    start = time.perf_counter()
    cold = run()
    cold_s = time.perf_counter() - start
    start = time.perf_counter()
    warm = run()
    warm_s = time.perf_counter() - start
    return {
        "cold_s": cold_s,
        "warm_s": warm_s,
        "rows": [len(cold), len(warm)],
        "torch": torch.__version__,
        "mup": getattr(mup, "__version__", "1.0.0"),
        "threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
