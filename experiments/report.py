"""Study outputs: metrics files, a loss plot per network and the markdown report.

Speed-up is measured the article's way: the reference scheme's final mean loss (over
seeds) is the bar; each scheme's epochs-to-bar is the first epoch at which its mean loss
is at or below the bar, and its speed-up is the reference's epochs-to-bar divided by its
own. A run *fails to converge* when its final loss is not finite or is above 90 % of
its first-epoch loss (not judged for one-epoch runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from experiments.train import History

#: The reference scheme per network and the article's claims beside it.
REFERENCES = {
    "counting": ("xavier_standard", {}),
    "mnist-cnn": ("xavier_standard", {"letkeman_standard": "1.744x"}),
    "mnist-dense": ("xavier_standard", {}),
    "hamlet-rnn": ("kaiming_normal", {"letkeman_standard": "2.5x", "letkeman_normalized": "3.125x"}),
}
CLAIMS = {
    "counting": "The article uses this network for its demos; it reports no speed-up here.",
    "mnist-cnn": "Letkeman passes standard Xavier's final loss 1.744x sooner; "
    "normalized Letkeman fails to converge on 2 of 5 seeds.",
    "mnist-dense": "Standard Xavier fails to converge; Kaiming escapes the plateau first.",
    "hamlet-rnn": "Letkeman is 2.5x (standard) and 3.125x (normalized) faster than Kaiming, mostly thanks to ANM: "
    "with ANM, Kaiming and Letkeman tie.",
}
FAIL_FRACTION = 0.9


def summarize(network: str, history: History) -> list[dict]:
    """Per scheme: final loss mean and sd, epochs to the reference's bar, speed-up, failures."""
    loss = np.stack(history.loss)  # [epochs, runs]
    arms = list(dict.fromkeys(arm for arm, _ in history.runs))
    cols = {arm: [r for r, (a, _) in enumerate(history.runs) if a == arm] for arm in arms}
    mean = {arm: loss[:, c].mean(axis=1) for arm, c in cols.items()}
    reference, article = REFERENCES[network]
    bar = mean[reference][-1] if reference in mean else math.nan

    def epochs_to_bar(curve):
        hit = np.flatnonzero(curve <= bar)
        return int(hit[0]) + 1 if hit.size else None

    ref_epochs = epochs_to_bar(mean[reference]) if reference in mean else None
    rows = []
    for arm, c in cols.items():
        final = loss[-1, c]
        # with a single epoch there is no progress to judge
        failed = int(np.sum(~np.isfinite(final) | (final > FAIL_FRACTION * loss[0, c]))) if len(loss) > 1 else None
        e = epochs_to_bar(mean[arm])
        rows.append(
            {
                "scheme": arm,
                "final_loss_mean": float(np.mean(final)),
                "final_loss_sd": float(np.std(final, ddof=1)) if len(c) > 1 else 0.0,
                "epochs_to_reference": e,
                "speedup": (ref_epochs / e) if (e and ref_epochs) else None,
                "article_speedup": article.get(arm),
                "failed_runs": failed,
                "runs": len(c),
            }
        )
    return rows


def markdown_table(network: str, rows: Sequence[dict], epochs: int) -> str:
    reference = REFERENCES[network][0]
    lines = [
        f"Reference: `{reference}` (its final mean loss is the bar); {epochs} epochs. Article: {CLAIMS[network]}",
        "",
        "| scheme | final loss (mean ± sd) | epochs to bar | speed-up | article | failed runs |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        e = r["epochs_to_reference"]
        speed = f"{r['speedup']:.2f}x" if r["speedup"] else "—"
        lines.append(
            f"| `{r['scheme']}` | {r['final_loss_mean']:.4f} ± {r['final_loss_sd']:.4f} | {e if e else 'never'} "
            f"| {speed} | {r['article_speedup'] or '—'} | "
            f"{'—' if r['failed_runs'] is None else r['failed_runs']}/{r['runs']} |"
        )
    return "\n".join(lines)


def plot_losses(path, network: str, history: History) -> None:
    """Mean loss per scheme against epoch, each seed faint."""
    from flaxinit.tooling import new_figure, save_figure

    loss = np.stack(history.loss)
    epochs = np.arange(1, loss.shape[0] + 1)
    fig, ax = new_figure(figsize=(7, 4.5))
    for arm in dict.fromkeys(a for a, _ in history.runs):
        cols = [r for r, (a, _) in enumerate(history.runs) if a == arm]
        (line,) = ax.plot(epochs, loss[:, cols].mean(axis=1), lw=2, label=arm)
        ax.plot(epochs, loss[:, cols], color=line.get_color(), lw=0.6, alpha=0.25)
    ax.set(xlabel="epoch", ylabel="training loss (mean over the epoch)", title=network)
    if np.all(loss[np.isfinite(loss)] > 0):
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=110)
