"""``python -m mc``'s output: the tables it prints, the refits, the plots, and the files it writes
(:func:`report_tables` for the Monte Carlo commands, :func:`report_coord` for ``coord-check``)."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import jax

import flaxinit
from flaxinit import tooling
from mc import _fit, _protocols
from mc._coord import CoordCheckResult
from mc._runner import CoordRunner, Runner


def _fmt(x: float | None, digits: int = 6) -> str:
    """A number, or a dash for no value (None, as strict JSON stores NaN, or NaN itself)."""
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _z(mean: float, expected: float | None, se: float | None) -> float | None:
    """(MC - exact) / SE where both exist (a one-iteration run has no SE)."""
    if expected is None or se is None or not se > 0:
        return None
    return (mean - expected) / se


def print_standard(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'scheme':<34} {'n':>6} {'MC mean ± SE':>24} {'exact':>10} {'z':>6} {'exact - 1':>10}")
    for r in rows:
        z = _z(r["mean"], r["expected"], r["se"])
        dev = r["expected"] - 1 if r["expected"] is not None else None
        mc = f"{r['mean']:.6f} ± {_fmt(r['se'])}"
        print(f"{r['spec']:<34} {r['size']:>6} {mc:>24} {_fmt(r['expected']):>10} {_fmt(z, 2):>6} {_fmt(dev, 6):>10}")


def print_normalized(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'scheme':<36} {'shape':>9} {'forward':>11} {'backward':>11} {'avg ± SE':>22} "
        f"{'exact avg':>10} {'z':>6} {'exact - 1':>10}"
    )
    for r in rows:
        e = r["expected_avg"]
        z = _z(r["avg"], e, r["avg_se"])
        avg = f"{r['avg']:.6f} ± {_fmt(r['avg_se'])}"
        shape = f"{r['n_in']}x{r['n_out']}"
        print(
            f"{r['spec']:<36} {shape:>9} {r['forward']:>11.5f} {r['backward']:>11.5f} {avg:>22} "
            f"{_fmt(e):>10} {_fmt(z, 2):>6} {_fmt(e - 1 if e is not None else None):>10}"
        )


def print_depth(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        print(f"\n{r['spec']} {r['activation']} widths {r['widths']} ({r['iterations']} iterations)")
        print(f"{'layer':>6} {'mean |activation|':>20} {'mean |gradient|':>20} {'mean square pre-act.':>22}")
        squares = r.get("preactivation_ms") or [None] * len(r["forward"])
        for i, (f, b, q) in enumerate(zip(r["forward"], r["backward"], squares, strict=True), start=1):
            print(f"{i:>6} {f:>20.6g} {b:>20.6g} {'—' if q is None else f'{q:.6g}':>22}")


def print_audit(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        print(f"\n{r['spec']}: {r['model']} ({r['api']}), {r['iterations']} initializations, {r['inputs']} inputs")
        print(f"{'layer':<32} {'shape':>16} {'RMS':>10} {'grad RMS':>10} {'mean |a|':>10} {'zeros':>7}")
        for layer in r["layers"]:
            shape = "x".join(map(str, layer["shape"]))
            print(
                f"{layer['path']:<32} {shape:>16} {layer['rms']:>10.4g} {layer['grad_rms']:>10.4g} "
                f"{layer['mean_abs']:>10.4g} {layer['zero_fraction']:>7.3f}"
            )


def plot_audit(path: Path, rows: list[dict[str, Any]]) -> None:
    """Forward and backward RMS per layer (call order), one line per scheme, log scale."""
    fig, axes = _figure(1, 2, figsize=(12, 4.5))
    for r in rows:
        layers = [x for x in r["layers"] if x["path"] != "(output)"]
        depth = range(1, len(layers) + 1)
        axes[0].plot(depth, [x["rms"] for x in layers], marker=".", label=r["spec"])
        axes[1].plot(depth, [x["grad_rms"] for x in layers], marker=".", label=r["spec"])
    model = rows[0]["model"] if rows else ""
    for ax, what in zip(axes, ("activations (forward)", "gradients (backward)"), strict=True):
        ax.set(yscale="log", xlabel="layer (call order)", ylabel="RMS", title=f"{model}: {what}")
        ax.legend(fontsize=7)
    tooling.save_figure(fig, path, dpi=120)


def require_matplotlib() -> None:
    """Raises :class:`~flaxinit.tooling.UsageError` now if ``--plot`` could not draw later."""
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise tooling.UsageError("--plot needs matplotlib: pip install -e '.[plots]'") from None


def _figure(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    require_matplotlib()
    return tooling.new_figure(*args, **kwargs)


def print_fit(fit: _fit.FitResult) -> None:
    print()
    print(fit.summary())


def _result_objects(rows: list[dict[str, Any]], cls) -> list:
    names = {f.name for f in dataclasses.fields(cls)}
    out = []
    for r in rows:
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in r.items() if k in names}
        out.append(cls(**kwargs))
    return out


def fits_from_rows(standard_rows, normalized_rows, objective: str = "minimax") -> list[_fit.FitResult]:
    """Exact-g fits, plus Monte Carlo fits from the exact-Letkeman rows (one scheme only:
    the schemes share their draws, so their rows are not independent)."""
    fits = [_fit.fit_standard(objective=objective), _fit.fit_normalized(objective=objective)]
    std = [r for r in standard_rows if r["spec"] == "letkeman_standard" and r["size"] >= 4]
    if len(std) >= 2:
        fits.append(_fit.fit_standard(_result_objects(std, _protocols.StandardResult), objective=objective))
    norm = [r for r in normalized_rows if r["spec"] == "letkeman_normalized"]
    if len(norm) >= 3:
        fits.append(_fit.fit_normalized(_result_objects(norm, _protocols.NormalizedResult), objective=objective))
    return fits


def plot(path: Path, standard_rows, normalized_rows, schemes: dict[str, flaxinit.Initializer]) -> None:
    import numpy as np

    panels = [p for p in (standard_rows, normalized_rows) if p]
    fig, axes = _figure(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    ax_iter = iter(axes[0])
    if standard_rows:
        ax = next(ax_iter)
        sizes = np.unique(np.round(np.geomspace(1, max(r["size"] for r in standard_rows), 200)).astype(int))
        for spec in dict.fromkeys(r["spec"] for r in standard_rows):
            rows = [r for r in standard_rows if r["spec"] == spec]
            init = schemes[spec]
            exact = [init.expected_abs_sum((n, 1), n) for n in sizes]
            (line,) = ax.plot(sizes, exact, lw=1, label=f"{spec} (exact)")
            ax.errorbar(
                [r["size"] for r in rows], [r["mean"] for r in rows], yerr=[1.96 * r["se"] for r in rows],
                fmt="o", ms=4, color=line.get_color(), label=f"{spec} (MC, 95 %)",
            )  # fmt: skip
        ax.set(xscale="log", xlabel="fan-in n", ylabel="mean |pre-activation|, all-ones input", title="standard test")
        ax.axhline(1, color="grey", lw=0.5)
        ax.legend(fontsize=7)
    if normalized_rows:
        ax = next(ax_iter)
        specs = list(dict.fromkeys(r["spec"] for r in normalized_rows))
        shapes = list(dict.fromkeys((r["n_in"], r["n_out"]) for r in normalized_rows))
        for i, spec in enumerate(specs):
            rows = {(r["n_in"], r["n_out"]): r for r in normalized_rows if r["spec"] == spec}
            x = [j + (i - (len(specs) - 1) / 2) * 0.2 for j, s in enumerate(shapes) if s in rows]
            ys = [rows[s] for s in shapes if s in rows]
            err = ax.errorbar(
                x, [r["avg"] for r in ys], yerr=[1.96 * r["avg_se"] for r in ys], fmt="o", ms=4,
                label=f"{spec} (MC, 95 %)",
            )  # fmt: skip
            color = err[0].get_color()
            exact = [r["expected_avg"] for r in ys]
            ax.scatter(x, exact, marker="_", s=120, color=color, label="exact" if i == 0 else None)
        ax.set_xticks(range(len(shapes)), [f"{a}x{b}" for a, b in shapes], rotation=45, fontsize=7)
        ax.axhline(1, color="grey", lw=0.5)
        ax.set(ylabel="avg magnitude over both passes", title="normalized test")
        ax.legend(fontsize=7)
    tooling.save_figure(fig, path, dpi=120)


def report_tables(args, runner: Runner, schemes: dict[str, Any], complete: bool, elapsed: float) -> int:
    """Prints the tables (and fits), writes the requested files; returns the exit status."""
    standard_rows, normalized_rows = runner.rows("standard"), runner.rows("normalized")
    if standard_rows:
        print_standard(standard_rows)
    if normalized_rows:
        print_normalized(normalized_rows)
    if runner.rows("depth"):
        print_depth(runner.rows("depth"))
    if runner.rows("audit"):
        print_audit(runner.rows("audit"))
    extra: dict[str, Any] = {"seconds": elapsed}
    if complete and args.command == "reproduce":
        fits = fits_from_rows(standard_rows, normalized_rows)
        for fit in fits:
            print_fit(fit)
        extra["fits"] = [f.to_dict() for f in fits]
    if args.json:
        tooling.write_json(args.json, runner.document(not complete, extra))
    if args.csv:
        tooling.write_csv(args.csv, [_flat(r) for r in runner.results.values()])
    if getattr(args, "plot", None) and (standard_rows or normalized_rows):
        plot(args.plot, standard_rows, normalized_rows, schemes)
    if getattr(args, "plot", None) and runner.rows("audit"):
        plot_audit(args.plot, runner.rows("audit"))
    if not complete:
        where = f" in {args.json}; continue with --resume" if args.json else " (pass --json PATH to keep partial runs)"
        print(f"\npartial: {len(runner.results)} rows finished{where}", file=sys.stderr)
        return 130
    print(f"\n{elapsed:.1f} s on {jax.default_backend()} ({len(jax.devices())} device(s))")
    return 0


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()}


# --- coord-check --------------------------------------------------------------------------------

_PARAMETRIZATION_NAMES = {"mup": "μP", "sp": "SP"}


def print_coord(results: list[CoordCheckResult]) -> None:
    """Per parametrization, one line per layer: the slope of log2 mean|a| against log2 width,
    ± its standard error, at each step (a column per step)."""
    for r in results:
        name = _PARAMETRIZATION_NAMES.get(r.parametrization, r.parametrization)
        print(
            f"\n{r.model} {name}, {r.optimizer} lr {r.lr:g}, widths {','.join(map(str, r.widths))} "
            f"(base {r.base_width}), {r.seeds} seeds: slope of log2 mean|a| against log2 width ± SE"
        )
        width = max([len("layer"), *map(len, r.paths)])
        print(f"{'layer':<{width}}" + "".join(f"{f't = {t}':>18}" for t in range(1, r.steps + 1)))
        for path in r.paths:
            cells = []
            for step in range(1, r.steps + 1):
                slope, se = r.slope(path, step)
                cells.append(f"{_fmt(slope, 3)} ± {_fmt(se, 3)}")
            print(f"{path:<{width}}" + "".join(f"{c:>18}" for c in cells))


def report_coord(args, runner: CoordRunner, complete: bool, elapsed: float) -> int:
    """Prints coord-check's slopes, writes ``--json``, ``--csv`` and ``--plot``; returns the exit status."""
    import numpy as np

    from mc._coord import plot_coord_data

    finished = runner.finished()
    # a layer at zero at some step (a zero-initialized query at t = 1) has no slope: NaN, printed
    # as a dash and stored as null, without numpy's warnings about log2(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        print_coord(finished)
        if args.json:
            tooling.write_json(args.json, runner.document(not complete, {"seconds": elapsed}))
    if args.csv:
        tooling.write_csv(args.csv, runner.rows())
    if args.plot and finished:
        titles = [f"{r.model} {_PARAMETRIZATION_NAMES.get(r.parametrization, r.parametrization)}" for r in finished]
        plot_coord_data(finished, args.plot, titles=titles)
    if not complete:
        where = f" in {args.json}; continue with --resume" if args.json else " (pass --json PATH to keep partial runs)"
        total = len(runner.parametrizations) * len(runner.widths)
        print(f"\npartial: {runner.widths_done()} of {total} widths finished{where}", file=sys.stderr)
        return 130
    print(f"\n{elapsed:.1f} s on {jax.default_backend()} ({len(jax.devices())} device(s))")
    return 0
