"""``summary.json`` and ``summary.md`` of ``python -m experiments mutransfer``: per sweep and arm
the optimal log2 learning rate at each size and its spread, the settings, where each arm ran."""

from __future__ import annotations

from typing import Any

import mc
from experiments._mutransfer_config import (
    ARM_TITLES,
    MUON_ARMS,
    SWEEPS,
    SWEPT,
    UNITS,
    WEIGHT_DECAY,
    Config,
    arm_groups,
)
from flaxinit import tooling


def summarize(
    results: dict[str, dict[str, mc.TransferResult]],
    cfg: Config,
    quick: bool,
    partial: bool,
    seconds: float,
    arm_settings: dict[tuple[str, str], dict[str, Any]],
    machines: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``summary.json``: per sweep and arm the sizes, optimal log2 LR per size, ``at_edge``,
    spread; the settings; ``machines``: per arm the machine it ran on (``None``: not recorded)."""
    out: dict[str, Any] = {}
    for sweep in SWEEPS:
        unit = UNITS[sweep]
        out[sweep] = {
            arm: {
                unit: list(r.sizes),
                "optimal_log2_lr": list(r.optimal_log2_lr),
                "at_edge": list(r.at_edge),
                "spread": r.spread,
            }
            for arm, r in results[sweep].items()
        }
    out["settings"] = {
        "quick": quick,
        "seeds": cfg.seeds,
        "key": cfg.key,
        "optimizer": f"adam (eps 1e-8; no weight decay, but {WEIGHT_DECAY} in the batch and steps sweeps); the Muon "
        "arms: mup.muon (muon_mup) and optax.contrib.muon (muon_sp) with their defaults, one learning rate for "
        "Muon's matrices and the rest",
        "figure_of_merit": "training loss averaged over the last 10% of steps, mean over seeds; diverged = +inf",
        "arms": {f"{sweep}_{arm}": s for (sweep, arm), s in arm_settings.items()},
    }
    out.update(quick=quick, partial=partial, seconds=seconds, machine=tooling.machine(), machines=machines or {})
    return tooling.to_json(out)


# --- summary.md --------------------------------------------------------------------------------


def _cell(value: float | None, at_edge: bool) -> str:
    if value is None:
        return "diverged"
    return f"{value:.2f}" + (" (edge)" if at_edge else "")


def _moves(entry: dict[str, Any], key: str, label: str) -> str:
    """How far one arm's optimum moves across its sizes (``entry[key]``, each a ``label``), in words."""
    sizes, optima, spread = entry[key], entry["optimal_log2_lr"], entry["spread"]
    ratio = sizes[-1] // sizes[0]
    span = f"{'an' if str(ratio).startswith('8') or ratio in (11, 18) else 'a'} {ratio}x {label} range"
    if spread is None:
        return f"an undefined amount across {span} (a size has no optimum: every run diverged)"
    text = (
        f"{spread:.2f} log2 units across {span} (from {optima[0]:.2f} at {label} {sizes[0]} to "
        f"{optima[-1]:.2f} at {sizes[-1]})"
    )
    if any(entry["at_edge"]):
        text += ", not a measurement: an optimum is at the grid's edge and may lie outside it"
    return text


def _machine(machine: dict[str, Any] | None) -> str:
    """A machine in words: its accelerator (or CPU), backend and jax."""
    if not machine:
        return "a machine not recorded"
    device = machine.get("device_kind") if machine.get("backend") != "cpu" else None
    return (f"{device or machine['cpu']} ({machine['cpu_count']} CPU cores, {machine['backend']}, "
            f"jax {machine['jax']})")  # fmt: skip


#: Per sweep: its title, the arm whose settings describe it, what a size is.
_TEXTS = {
    "mlp": ("MLP on MNIST", "mlp_sp", "width"),
    "transformer": ("pre-LN Transformer on Hamlet's characters", "transformer_sp", "width"),
    "depth": ("pre-LN Transformer on Hamlet's characters, over depth", "depth_none", "depth"),
    "batch": ("MLP on MNIST, over batch size", "batch_mup", "batch size"),
    "steps": ("MLP on MNIST, over training length", "steps_mup", "steps"),
}


def _describe(sweep: str, a: dict[str, Any]) -> str:
    """One sweep's model, budget and data, from an arm's settings ``a``."""
    if sweep == "mlp":
        return (f"{a['hidden_layers']} ReLU layers of the width, 784 -> 10, base width {a['base']}; "
                f"{a['steps']} steps of batch {a['batch_size']}; data: {a['data']}.")  # fmt: skip
    if sweep == "transformer":
        return (f"{a['layers']} blocks, 4 heads, learned positions, base width {a['base']}, query not zeroed "
                f"(SP and μP are the same network at the base width); {a['steps']} steps of "
                f"{a['batch_size']} windows of {a['length']} characters; data: {a['data']}.")  # fmt: skip
    if sweep in SWEPT:
        fixed = (f"{a['steps']} steps, batch sizes {a['sizes'][0]} to {a['sizes'][-1]}" if sweep == "batch"
                 else f"batch {a['batch_size']}, {a['sizes'][0]} to {a['sizes'][-1]} steps")  # fmt: skip
        rule = ("learning rate and decay times sqrt(B / " + str(a["base"]) + ")" if sweep == "batch"
                else f"decay times {a['base']} / T")  # fmt: skip
        return (f"The MLP ({a['hidden_layers']} ReLU layers) at width {a['width']}, μP against base width "
                f"{a['base_width']}; {fixed}; AdamW with weight decay {a['weight_decay']} (μP's, "
                f"independent of the LR multipliers) at every size, against the same with the rule "
                f"(`mup.adamw(..., {sweep}=(size, {a['base']}))`: {rule}); the figure of merit is each "
                "run's own last 10% of steps.")  # fmt: skip
    return (f"Width {a['width']}, base depth {a['base']}, μP's model at its base width (every width "
            f"rule the identity); CompleteP: residual branches times (L / {a['base']})^-1, Adam ε times "
            f"(L / {a['base']})^-1 inside the blocks; {a['steps']} steps of {a['batch_size']} windows of "
            f"{a['length']} characters.")  # fmt: skip


_MUON_TEXT = (
    "Muon: `mup.muon` (μP's init; Muon on the hidden matrices, its update times the spectral condition "
    "relative to the base; embeddings, input kernels, the readout, biases and norms on `mup.adamw`'s rules) "
    "against optax's Muon as it comes with the standard parametrization (`optax.contrib.muon`: every 2-D "
    "parameter on Muon, the rest on Adam), each with its defaults and one learning rate for both parts. "
)


def _table(summary: dict[str, Any], sweep: str, group: tuple[str, ...], label: str, figure: str) -> list[str]:
    """The optimum per size of the ``group``'s arms (one grid and sizes), the plot, where they ran."""
    entries = {arm: e for arm, e in summary[sweep].items() if arm in group}
    a = summary["settings"]["arms"][f"{sweep}_{group[0]}"]
    grid = a["log2_lrs"]
    lines = [f"log2 learning rates {grid[0]:g} to {grid[-1]:g} in steps of {grid[1] - grid[0]:g}.", ""]
    ran_on = summary.get("machines", {})
    where = {_machine(ran_on.get(f"{sweep}_{arm}")) for arm in group if f"{sweep}_{arm}" in ran_on}
    if where:
        lines += [f"Ran on {' and '.join(sorted(where))}.", ""]
    if not entries:
        return [*lines, "(not run)", ""]
    sizes = next(iter(entries.values()))[UNITS[sweep]]
    lines += ["| arm | " + " | ".join(f"{label} {v}" for v in sizes) + " | spread |", "|---" * (len(sizes) + 2) + "|"]
    for arm in group:
        if arm in entries:
            e = entries[arm]
            cells = [_cell(v, edge) for v, edge in zip(e["optimal_log2_lr"], e["at_edge"], strict=True)]
            spread = "—" if e["spread"] is None else f"{e['spread']:.2f}"
            lines.append(f"| {ARM_TITLES[arm]} | " + " | ".join(cells) + f" | {spread} |")
    return [*lines, "", f"![{figure}]({figure}.png)", ""]


def _finding(summary: dict[str, Any], sweep: str, group: tuple[str, ...], title: str, label: str) -> list[str]:
    """How far each of the group's two arms' optimum moves, the second (the method) first."""
    entries = summary[sweep]
    if not all(arm in entries for arm in group):
        return []
    key, (first, second) = UNITS[sweep], group
    return [f"- {title}: {ARM_TITLES[second]}'s optimum moves by {_moves(entries[second], key, label)}; "
            f"{ARM_TITLES[first]}'s by {_moves(entries[first], key, label)}."]  # fmt: skip


def markdown(summary: dict[str, Any]) -> str:
    """``summary.md``: the optimal log2 learning rate per size and arm, the spreads, what they show."""
    s = summary["settings"]
    mode = " --quick" if summary["quick"] else ""
    lines = [
        "# μTransfer: the optimal learning rate across width, depth, batch size and training length",
        "",
        f"Generated by `python -m experiments mutransfer{mode}` on {_machine(summary['machine'])}, "
        f"{summary['seconds']:.0f} s"
        + (" **(partial run: interrupted; `--resume` continues it)**" if summary["partial"] else "")
        + "; each sweep says where its arms ran.",
        "",
        f"Adam, a constant learning rate (no weight decay but in the batch and steps sweeps), and Muon in the "
        f"width sweeps' Muon arms; {s['seeds']} seeds per learning rate (key {s['key']}). "
        "Figure of merit: the training loss averaged over the last 10% of the steps, then over the seeds (a "
        "diverged run counts as +inf); the optimal log2 learning rate of a size is the vertex of the parabola "
        "through the best grid point and its two neighbours (SPEC §10); *(edge)*: the best point is at the grid's "
        "edge, the optimum may lie outside it. Spread: max − min of the optimum across sizes.",
        "",
    ]
    findings = []
    for sweep in SWEEPS:
        title, first, label = _TEXTS[sweep]
        lines += [f"## {title}", "", _describe(sweep, s["arms"][first]), ""]
        for figure, group in arm_groups(sweep):
            heading = title
            if group[0] in MUON_ARMS:  # their own sizes and budget: said under their own heading
                heading, m = f"{title}, Muon", s["arms"][f"{sweep}_{group[0]}"]
                lines += [f"### {heading}", "", _MUON_TEXT + f"Widths {m['sizes'][0]} to {m['sizes'][-1]}, base "
                          f"{m['base']}; {m['steps']} steps of batch {m['batch_size']}.", ""]  # fmt: skip
            lines += _table(summary, sweep, group, label, figure)
            findings += _finding(summary, sweep, group, heading, label)
    if findings:
        lines += ["## What the data show", "", *findings, ""]
    return "\n".join(lines)
