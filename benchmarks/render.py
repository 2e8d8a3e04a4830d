"""Renders every measured figure that README.md, docs/ and the notebooks' markdown quote, from stored files.

No measured number is typed into the documentation: each sits between two HTML comments
(invisible in rendered markdown and in Jupyter) that say where it comes from, and this
script rewrites what is between them.

* A value: ``<!-- value FILE PATH FORMAT -->3.33x<!-- /value -->``. ``FILE`` is relative to
  the repository root, or a short name given earlier in the same document by
  ``<!-- source NAME FILE -->``; ``PATH`` walks the JSON by ``/``-separated keys or list indices, and
  ``[key=value]`` (or ``[k1=v1,k2=v2]``) picks the one element of a list of objects that
  matches;
  ``FORMAT`` (the rest of the comment, optional) is a Python format string such as
  ``{:.2f}x``.
* A block: ``<!-- render NAME ARGS -->`` ... ``<!-- /render -->`` (each on its own line), where
  ``NAME`` is one of :data:`BLOCKS` below: the benchmark tables, and ``include FILE`` (the
  body of a stored markdown output, below its title).

``python benchmarks/render.py`` rewrites the files in place; ``--check`` changes nothing and
exits 1 naming the files that disagree with their sources (the test suite runs it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = "benchmarks/results"
VALUE = re.compile(r"<!-- value (\S+) (\S+)(?: ([^>]*?))? -->(.*?)<!-- /value -->", re.DOTALL)
SOURCE = re.compile(r"<!-- source (\S+) (\S+) -->")
BLOCK = re.compile(r"(<!-- render ([^>]*?) -->\n)(.*?)(<!-- /render -->)", re.DOTALL)


class RenderError(Exception):
    """A directive that names a missing file, key or renderer."""


def load(path: str) -> Any:
    file = ROOT / path
    if not file.exists():
        raise RenderError(f"{path}: no such file")
    return json.loads(file.read_text()) if file.suffix == ".json" else file.read_text()


def lookup(data: Any, path: str) -> Any:
    """The value at ``path`` (``a/b/0/c[key=value]/d``) in parsed JSON."""
    node = data
    for part in filter(None, path.split("/")):
        name, _, selector = part.partition("[")
        if name:
            node = node[int(name)] if isinstance(node, list) else node[name]
        if selector:
            wanted = dict(pair.partition("=")[::2] for pair in selector.rstrip("]").split(","))
            matches = [item for item in node if all(str(item.get(k)) == v for k, v in wanted.items())]
            if len(matches) != 1:
                raise RenderError(f"{path}: {len(matches)} elements match [{selector}")
            node = matches[0]
    return node


def value(file: str, path: str, fmt: str | None) -> str:
    try:
        found = lookup(load(file), path)
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise RenderError(f"{file}: no value at {path!r} ({err!r})") from None
    return (fmt or "{}").format(found)


# --- blocks ---------------------------------------------------------------------------------------


def machine_line(machine: dict[str, Any]) -> str:
    date = f", {machine['date']}" if "date" in machine else ""
    return (
        f"Measured on {machine['cpu']} ({machine['cpu_count']} cores), {machine['backend']} backend, "
        f"jax {machine['jax']} / jaxlib {machine['jaxlib']}{date}."
    )


def _ratio_range(values: Sequence[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}x" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}-{hi:.2f}x"


def bench_init() -> str:
    doc = load(f"{RESULTS}/bench_init.json")
    rows, meta = doc["results"], doc["meta"]
    lines = [
        f"| case | mode | uniform schemes / `glorot_uniform` | A/A control | target <= {meta['target_ratio']}x |",
        "|---|---|---|---|---|",
    ]
    for case in dict.fromkeys(r["case"] for r in rows):
        for mode in dict.fromkeys(r["mode"] for r in rows):
            group = [r for r in rows if r["case"] == case and r["mode"] == mode]
            uniform = [r["ratio"] for r in group if r["kind"] == "uniform"]
            control = next(r["ratio"] for r in group if r["kind"] == "control")
            met = "met" if all(r["meets_target"] for r in group if r["kind"] == "uniform") else "**missed**"
            lines.append(f"| {case} | {mode} | {_ratio_range(uniform)} | {control:.2f}x | {met} |")
    pairs = [r for r in rows if r["kind"] == "jax-pair" and r["mode"] == "jit"]
    if pairs:
        lines += ["", "| scheme, jitted | against jax's function of the same name: dense | conv |", "|---|---|---|"]
        for name in dict.fromkeys(r["scheme"] for r in pairs):
            ratio = {r["case"]: f"{r['ratio']:.2f}x" for r in pairs if r["scheme"] == name}
            lines.append(f"| `{name}` | {ratio.get('dense', '—')} | {ratio.get('conv', '—')} |")
    return "\n".join([*lines, "", f"{meta['repeats']} repeats. {machine_line(meta)}"])


def bench_mc() -> str:
    doc = load(f"{RESULTS}/bench_mc.json")
    sizes, meta = [*doc["sizes"], doc["all_sizes"]], doc["meta"]
    head = "| n | " + " | ".join(str(s["n"]).replace("all sizes", "all") for s in sizes) + " |"
    lines = [head, "|---" * (len(sizes) + 1) + "|"]
    rate = " | ".join(f"{s['summary']['rate']['engine'] / 1e6:.0f}" for s in sizes)
    lines.append(f"| engine, M samples/s | {rate} |")
    labels = {
        "limit": "engine / limit (Philox, bare loop)",
        "threefry": "engine / engine on threefry",
        "numpy64": "engine / NumPy float64",
        "numpy32": "engine / NumPy float32",
        "python": "engine / pure Python",
    }
    for method, label in labels.items():
        digits = 1 if method == "python" else 2
        cells = " | ".join(f"{s['summary']['ratio'][method]:.{digits}f}x" for s in sizes)
        lines.append(f"| {label} | {cells} |")
    cells = " | ".join(f"{s['summary']['ceiling']:.2f}x" for s in sizes)
    lines.append(f"| ceiling of engine / limit (engine's own cost) | {cells} |")
    text = "\n".join(lines)
    memory = doc.get("memory") or []
    if len(memory) == 3:
        ratio = memory[2]["vmhwm_kib"] / memory[1]["vmhwm_kib"]
        text += (
            f"\n\nPeak memory of {memory[2]['iterations']:.0e} iterations is {ratio:.3f}x that of "
            f"{memory[1]['iterations']:.0e}."
        )
    once = doc.get("compile_once")
    if once:
        text += (
            f" A second identical `mc.standard_test(0, [1, 5, 25, 100, 300, 1000], 4096)` takes "
            f"{once['second_s']:.3f} s (the first, compiling, {once['first_s']:.1f} s)."
        )
    verdicts = []
    for target, v in doc.get("verdicts", {}).items():
        where = "" if v["met"] or "missed_at" not in v else f" (at n = {', '.join(v['missed_at'])})"
        verdicts.append(f"`{target}` {'met' if v['met'] else '**missed**'}{where}")
    if verdicts:
        text += "\n\nTargets: " + "; ".join(verdicts) + "."
    device = f"{meta['platform']} x{meta['device_count']}" if "platform" in meta else meta["backend"]
    return (
        f"{text}\n\n{meta['repeats']} repeats, {meta['iterations']} iterations per size, on {device}. "
        f"{machine_line(meta)}"
    )


def bench_study() -> str:
    doc = load(f"{RESULTS}/bench_study.json")
    lines = [
        "| network | runs | steps per run | vectorized | per-run epochs (fair) | per-run steps | "
        "speed-up vs per-run epochs | vs per-run steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["results"]:
        lines.append(
            f"| {r['network']} | {r['runs']} | {r['steps_per_run']} | {r['vectorized_s']:.3f} s | "
            f"{r['per_run_epochs_s']:.3f} s | {r['per_run_steps_s']:.2f} s | "
            f"**{r['speedup_vs_per_run_epochs']:.1f}x** | {r['speedup_vs_per_run_steps']:.0f}x |"
        )
    return "\n".join([*lines, "", f"Median of {doc['repeats']} timed runs each. {machine_line(doc['machine'])}"])


def bench_audit() -> str:
    doc = load(f"{RESULTS}/bench_audit.json")
    meta = doc["meta"]
    lines = [
        "| width | parameters | `mc.audit`, inits/s | user's loop, inits/s | drawing the weights alone, inits/s | "
        f"audit / loop | target >= {doc['verdict']['target']:g}x |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in doc["widths"]:
        met = "met" if doc["verdict"]["met"][str(r["width"])] else "**missed**"
        rate = r["rate"]
        lines.append(
            f"| {r['width']} | {r['parameters']} | {rate['audit']:.0f} | {rate['loop']:.0f} | "
            f"{rate['init only']:.0f} | **{r['ratio']:.1f}x** | {met} |"
        )
    return "\n".join(
        [
            *lines,
            "",
            f"{meta['depth']}-layer ReLU MLPs, He normal, batch 16; {meta['iterations']} audit iterations, "
            f"{meta['loop_iterations']} loop iterations, median of {meta['repeats']} repeats. {machine_line(meta)}",
        ]
    )


def bench_coord(path: str = f"{RESULTS}/bench_coord.json") -> str:
    """``mc.coord_check`` against microsoft/mup's per-seed loop (``<!-- render bench_coord [FILE] -->``)."""
    doc = load(path)
    meta, median, ratio = doc["meta"], doc["median_s"], doc["ratio"]
    compiling, run = doc["median_compile_s"], doc["median_excluding_compile_s"]
    target = doc["verdict"]["target"]

    def verdict(kind: str) -> str:
        return "met" if doc["verdict"]["met"][kind] else "**missed**"

    lines = [
        f"| one coordinate check | `mc.coord_check` | per-seed loop (`get_coord_data`) | loop / `coord_check` | "
        f"target >= {target:g}x |",
        "|---|---|---|---|---|",
        f"| cold: compiling its programs | {median['coord_check cold']:.2f} s | {median['loop cold']:.2f} s | "
        f"**{ratio['cold']:.2f}x** | {verdict('cold')} |",
        f"| of which XLA compiling (wall time) | {compiling['coord_check cold']:.2f} s | "
        f"{compiling['loop cold']:.2f} s | | |",
        f"| cold, excluding the time XLA compiled | {run['coord_check cold']:.2f} s | {run['loop cold']:.2f} s | "
        f"{ratio['excluding compilation']:.2f}x | |",
        f"| warm: programs compiled before | {median['coord_check warm']:.2f} s | {median['loop warm']:.2f} s | "
        f"**{ratio['warm']:.2f}x** | {verdict('warm')} |",
    ]
    widths = ", ".join(map(str, meta["widths"]))
    return "\n".join(
        [
            *lines,
            "",
            f"`{meta['model']}` at widths {widths} (base {meta['base_width']}), {meta['seeds']} seeds, "
            f"{meta['steps']} Adam steps, batch {meta['batch']}x{meta['features']}; median of {meta['repeats']} "
            f"repeats, load average {meta['loadavg_start'][0]:.1f} at the start. {machine_line(meta)}",
        ]
    )


def bench_coord_microsoft(path: str = f"{RESULTS}/bench_coord_microsoft.json") -> str:
    """``mc.coord_check``/``mc.verify`` against microsoft/mup's ``get_coord_data`` in torch
    (``<!-- render bench_coord_microsoft [FILE] -->``)."""
    doc = load(path)
    meta, median, ratio, met = doc["meta"], doc["median_s"], doc["ratio"], doc["met"]

    def verdict(kind: str) -> str:
        return "met" if met[kind] else "**missed**"

    lines = [
        "| one coordinate check, fresh process | microsoft/mup `get_coord_data` (torch) | `mc.coord_check` | "
        "torch / jax | target |",
        "|---|---|---|---|---|",
        f"| cold: first call | {median['get_coord_data cold']:.2f} s | {median['coord_check cold']:.2f} s | "
        f"**{ratio['cold']:.2f}x** | >= {doc['targets']['cold']:g}x: {verdict('cold')} |",
        f"| cold, persistent compilation cache filled | {median['get_coord_data cold']:.2f} s | "
        f"{median['coord_check cold, cache filled']:.2f} s | {ratio['cold, cache filled']:.2f}x | |",
        f"| warm: second call | {median['get_coord_data warm']:.2f} s | {median['coord_check warm']:.2f} s | "
        f"**{ratio['warm']:.2f}x** | >= {doc['targets']['warm']:g}x: {verdict('warm')} |",
        f"| `mc.verify` (also every update effect), warm | {median['get_coord_data warm']:.2f} s | "
        f"{median['verify warm']:.2f} s | {ratio['verify warm']:.2f}x | |",
    ]
    floor_rows = {"init cold": "floor, cold: the model's init alone", "train cold": "floor, cold: init and training, "
                  "no statistics", "train warm": "floor, warm: init and training, no statistics"}  # fmt: skip
    for name, label in floor_rows.items() if "floor_ratio" in doc else ():
        peer = median[f"get_coord_data {name.split()[1]}"]
        lines.append(f"| {label} | {peer:.2f} s | {median[f'floor {name}']:.2f} s | {doc['floor_ratio'][name]:.2f}x "
                     "| the most jax reaches |")  # fmt: skip
    widths = ", ".join(map(str, meta["widths"]))
    return "\n".join(
        [
            *lines,
            "",
            f"The MLP of microsoft/mup's coordinate check ({meta['features']} -> w -> w -> {meta['classes']}) at "
            f"widths {widths}, {meta['seeds']} seeds, {meta['steps']} Adam steps, batch {meta['batch']}; torch "
            f"{meta['torch']} ({meta['torch_threads']} threads), mup {meta['mup']}, jax {meta['jax']}; median of "
            f"{meta['repeats']} repeats, each side in fresh processes; load average {meta['loadavg_start'][0]:.1f} "
            f"at the start. {machine_line(meta)}",
        ]
    )


TORCH_GAINS = {"linear": "1", "relu": "√2 = 1.4142", "leaky_relu": "√(2/(1+0.01²)) = 1.4141", "tanh": "5/3 = 1.6667",
               "sigmoid": "1", "selu": "3/4 = 0.75"}  # fmt: skip


def gain_table() -> str:
    """flaxinit.gain of the common activations, forward and backward, beside PyTorch's calculate_gain."""
    import flaxinit

    names = ("linear", "relu", "leaky_relu", "tanh", "sigmoid", "selu", "gelu", "silu", "elu", "softplus", "mish")
    lines = ["| activation | forward gain | backward gain | PyTorch `calculate_gain` |", "|---|---|---|---|"]
    for name in names:
        forward, backward = (flaxinit.gain(name, mode) for mode in ("forward", "backward"))
        lines.append(f"| `{name}` | {forward:.4f} | {backward:.4f} | {TORCH_GAINS.get(name, 'raises')} |")
    lines.append(
        "| `gelu` exact (`approximate=False`) | "
        f"{flaxinit.gain('gelu', approximate=False):.4f} | {flaxinit.gain('gelu', 'backward', approximate=False):.4f} "
        "| raises |"
    )
    return "\n".join(lines)


def einsum_table() -> str:
    """Fans of common einsum kernels by the equation and by jax's default axis rules."""
    import flaxinit

    cases = [
        ("attention query/key/value", "btd,dnh->btnh", (512, 8, 64)),
        ("attention output", "btnh,nhd->btd", (8, 64, 512)),
        ("dense", "bd,df->bf", (512, 2048)),
        ("per-head (batch n)", "bnd,ndh->bnh", (8, 512, 64)),
    ]
    lines = [
        "| kernel | equation | shape | fans by `einsum=` | fans by default axes | default / right std (fan-in) |",
        "|---|---|---|---|---|---|",
    ]
    for label, equation, shape in cases:
        right, default = flaxinit.compute_fans(shape, einsum=equation), flaxinit.compute_fans(shape)
        ratio = (right[0] / default[0]) ** 0.5
        lines.append(f"| {label} | `{equation}` | {shape} | {right} | {default} | {ratio:.4f} |")
    return "\n".join(lines)


def include(path: str) -> str:
    """A stored markdown output below its title, headings moved down two levels."""
    text = load(path)
    body = text.split("\n", 1)[1] if text.startswith("# ") else text
    return re.sub(r"^(#+) ", lambda m: "#" * min(6, len(m.group(1)) + 2) + " ", body.strip(), flags=re.M)


BLOCKS: dict[str, Callable[..., str]] = {
    "bench_init": bench_init,
    "bench_mc": bench_mc,
    "bench_study": bench_study,
    "bench_audit": bench_audit,
    "bench_coord": bench_coord,
    "bench_coord_microsoft": bench_coord_microsoft,
    "einsum_table": einsum_table,
    "gain_table": gain_table,
    "include": include,
}


# --- files -----------------------------------------------------------------------------------------


def render_text(text: str) -> str:
    def block(m: re.Match) -> str:
        name, *args = m.group(2).split()
        if name not in BLOCKS:
            raise RenderError(f"unknown block {name!r}; known: {', '.join(BLOCKS)}")
        try:
            return f"{m.group(1)}{BLOCKS[name](*args)}\n{m.group(4)}"
        except (KeyError, IndexError, TypeError) as err:
            raise RenderError(f"block {m.group(2)!r}: its source lacks {err!r}") from None

    sources = dict(SOURCE.findall(text))

    def inline(m: re.Match) -> str:
        text = value(sources.get(m.group(1), m.group(1)), m.group(2), m.group(3))
        fmt = f" {m.group(3)}" if m.group(3) else ""
        return f"<!-- value {m.group(1)} {m.group(2)}{fmt} -->{text}<!-- /value -->"

    return VALUE.sub(inline, BLOCK.sub(block, text))


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "notebooks").glob("*.ipynb"))]


def render_file(path: Path) -> str:
    """The file's text with every directive rendered (notebooks: their markdown cells)."""
    text = path.read_text()
    if path.suffix != ".ipynb":
        return render_text(text)
    notebook = json.loads(text)
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            source = render_text("".join(cell["source"]))
            cell["source"] = source.splitlines(keepends=True)
    end = "\n" if text.endswith("\n") else ""  # as the file had it (nbformat writes none)
    return json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + end  # as nbformat formats


def stale() -> list[Path]:
    """The documents whose rendered figures differ from their sources."""
    return [p for p in documents() if render_file(p) != p.read_text()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a document is stale")
    args = parser.parse_args(argv)
    try:
        changed = stale()
        if not args.check:
            for path in changed:
                path.write_text(render_file(path))
    except RenderError as err:
        print(f"render.py: error: {err}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"{'stale' if args.check else 'rendered'}: {path.relative_to(ROOT)}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
