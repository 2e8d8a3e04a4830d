"""The training study: learning, common random numbers, vectorization, loaders, CLI."""

import gzip
import json
import re
import struct
from pathlib import Path

import flax.linen as nn
import jax
import numpy as np
import pytest

import flaxinit
import mc
from experiments import _cli, data, demos
from experiments.networks import CountingNet, PatchConv, arms_for, setup_for
from experiments.train import Dataset, init_runs, train


def test_counting_xavier_reaches_most_pairs_within_1200_epochs():
    """Standard Xavier, lr 0.1, one example per step: every seed predicts at least 17 of
    the 32 pairs correctly at some epoch within 1200 (the default study run saw 498-918)."""
    history = train(setup_for("counting"), {"xavier_standard": {"default": flaxinit.xavier_standard()}},
                    [1, 2, 3, 4, 5], demos.counting_data(), 1200)  # fmt: skip
    loss, acc = np.stack(history.loss), np.stack(history.accuracy)
    assert np.all(loss[-1] < 0.5 * loss[0])
    assert np.all(32 * acc.max(axis=0) >= 17)


def _kernels(params):
    return [
        leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params) if "kernel" in jax.tree_util.keystr(path)
    ]


# the CNN compiles a vmapped convolutional network per scheme: CI's second tier
@pytest.mark.parametrize("network", ["counting", pytest.param("mnist-cnn", marks=pytest.mark.slow)])
def test_uniform_schemes_are_exact_rescalings_of_one_draw(network):
    arms = arms_for(network)
    uniform = [a for a, roles in arms.items() if roles["default"].distribution == "uniform"]
    sample = demos.counting_data().train_x[0] if network == "counting" else np.zeros((28, 28), np.float32)
    runs, params = init_runs(setup_for(network), {a: arms[a] for a in uniform}, [1, 2], sample)
    kernels = _kernels(params)
    for seed in (1, 2):
        unit = None
        for arm in uniform:
            r = runs.index((arm, seed))
            scaled = [np.asarray(k[r]) / arms[arm]["default"].bound(k.shape[1:]) for k in kernels]
            if unit is None:
                unit = scaled
                assert all(np.abs(u).max() <= 1 for u in unit)
            for u, s in zip(unit, scaled, strict=True):
                np.testing.assert_allclose(s, u, rtol=1e-6, atol=1e-7)
    # different seeds draw differently
    assert not np.allclose(kernels[0][runs.index((uniform[0], 1))], kernels[0][runs.index((uniform[0], 2))])


F32_UNIT_ROUNDOFF = 2.0**-24


def _gamma(k: int) -> float:
    """Higham's gamma_k = k u / (1 - k u): a float32 sum of k products, in any order (FMA or not),
    is within gamma_k * sum|terms| of the exact value."""
    return k * F32_UNIT_ROUNDOFF / (1 - k * F32_UNIT_ROUNDOFF)


@pytest.mark.parametrize("kh", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("kw", [1, 2, 3, 4, 5])
def test_patch_conv_equals_flax_conv(kh, kw):
    """Same parameters, same outputs as ``nn.Conv(padding="SAME")``, even kernels included.

    The two compute each output as a float32 sum of K = kh*kw*C products plus a bias, in
    different orders, so each is within gamma_{K+1} * S of the exact value, where S is the
    same sum of absolute values; they differ by at most 2 gamma_{K+1} S. S is computed by
    the conv itself on |x|, |kernel|, |bias| (all terms positive: relative error <= gamma).
    """
    x = jax.random.normal(jax.random.key(kh * 10 + kw), (2, 7, 6, 3))
    patch = PatchConv(4, (kh, kw), kernel_init=flaxinit.xavier_standard())
    conv = nn.Conv(4, (kh, kw), padding="SAME")

    @jax.jit
    def outputs(x):
        params = jax.tree.map(lambda p: p + 0.1, patch.init(jax.random.key(1), x))  # a nonzero bias too
        abs_params = jax.tree.map(jax.numpy.abs, params)
        return params, patch.apply(params, x), conv.apply(params, x), conv.apply(abs_params, abs(x))

    params, got, want, abs_sum = jax.tree.map(np.asarray, outputs(x))
    assert jax.tree.map(np.shape, jax.eval_shape(conv.init, jax.random.key(0), x)) == jax.tree.map(np.shape, params)
    k = kh * kw * x.shape[-1] + 1
    abs_sum = abs_sum.astype(np.float64) / (1 - _gamma(k))
    assert got.shape == want.shape == (2, 7, 6, 4)
    assert np.all(np.abs(got.astype(np.float64) - want) <= 2 * _gamma(k) * abs_sum)


def test_vectorized_runs_equal_separate_runs():
    ds = demos.counting_data()
    arms = {a: arms_for("counting")[a] for a in ("xavier_standard", "letkeman_standard")}
    together = train(setup_for("counting"), arms, [1, 2], ds, 20)
    alone = train(setup_for("counting"), {"letkeman_standard": arms["letkeman_standard"]}, [2], ds, 20)
    r = together.runs.index(("letkeman_standard", 2))
    # different programs (vmapped over 4 runs or 1): float32 rounding apart, measured ~1e-7
    # relative after 20 epochs; a different init or example order differs by O(1)
    np.testing.assert_allclose(np.stack(together.loss)[:, r], np.stack(alone.loss)[:, 0], rtol=1e-5)


def test_arms_of_a_seed_share_data_order():
    same = {"a": {"default": flaxinit.xavier_standard()}, "b": {"default": flaxinit.xavier_standard()}}
    history = train(setup_for("counting"), same, [3], demos.counting_data(), 5)
    loss = np.stack(history.loss)
    # two lanes of one vmapped program (equal on this CPU; SIMD tail lanes may round apart
    # elsewhere): another example order would differ at the first epoch, by O(1)
    np.testing.assert_allclose(loss[:, 0], loss[:, 1], rtol=1e-6)


def test_rnn_arms_use_anm_on_the_one_hot_input():
    arms = arms_for("hamlet-rnn")
    assert arms["letkeman_standard"]["input"] == flaxinit.letkeman_standard(fan_in=1)
    assert "input" not in arms["kaiming_normal"]
    assert arms["kaiming_normal+anm"]["input"] == flaxinit.kaiming_normal(fan_in=1)


# --- tiny data files, written here ------------------------------------------------------------


def write_idx(path, array, gz=False):
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 96).astype(np.uint8)
    # learnable: the label decides which rows are bright
    images = rng.integers(0, 40, (96, 28, 28)).astype(np.uint8)
    for i, y in enumerate(labels):
        images[i, 2 * y : 2 * y + 3] = 255
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images[:64], gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels[:64], gz=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images[64:])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[64:])
    return tmp_path


def test_idx_loader_reads_gzipped_and_plain(mnist_dir):
    images = data.load_mnist_idx(mnist_dir)
    assert images.train_images.shape == (64, 28, 28) and images.test_images.shape == (32, 28, 28)
    assert images.train_images.dtype == np.float32 and images.train_images.max() == 1.0


@pytest.mark.parametrize(
    "corrupt,match",
    [
        (lambda p: p.write_bytes(b"\x00\x01\x08\x01"), "bad magic number"),
        (lambda p: p.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x01\x02"), "promises 18 bytes"),
        (lambda p: p.unlink(), "missing t10k-labels-idx1-ubyte"),
    ],
)
def test_idx_loader_errors(mnist_dir, corrupt, match):
    corrupt(mnist_dir / "t10k-labels-idx1-ubyte")
    with pytest.raises(data.DataError, match=match):
        data.load_mnist_idx(mnist_dir)


def test_text_loader(tmp_path):
    good = tmp_path / "t.txt"
    good.write_text("To be, or not to be, that is the question. " * 5)
    assert data.load_text(good).startswith("To be")
    (tmp_path / "short.txt").write_text("Ay.")
    with pytest.raises(data.DataError, match="at least 100 characters"):
        data.load_text(tmp_path / "short.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00" * 50)
    with pytest.raises(data.DataError, match="not UTF-8"):
        data.load_text(tmp_path / "bin.txt")
    with pytest.raises(data.DataError, match="no such file"):
        data.load_text(tmp_path / "none.txt")


def test_markdown_is_stripped():
    text = "# Hamlet\n\n## ACT I\n\n**BERNARDO**  \nWho's there?\n\n_Enter HORATIO_\n\\[Aside\\]\n"
    assert data.strip_markdown(text) == "Hamlet\n\nACT I\n\nBERNARDO\nWho's there?\n\nEnter HORATIO\n[Aside]\n"


@pytest.mark.parametrize("network", ["mnist-dense", "mnist-cnn"])
def test_mnist_networks_learn_on_tiny_data(network, mnist_dir):
    images = data.load_mnist_idx(mnist_dir)
    eye = np.eye(10, dtype=np.float32)
    y, ey = (images.train_labels, images.test_labels) if network == "mnist-cnn" else (
        eye[images.train_labels], eye[images.test_labels])  # fmt: skip
    ds = Dataset(images.train_images, y, images.test_images, ey)
    arms = {"letkeman_standard": arms_for(network)["letkeman_standard"]}
    history = train(setup_for(network, lr=0.5 if network == "mnist-dense" else 0.1), arms, [1, 2], ds, 4)
    loss = np.stack(history.loss)
    assert loss.shape == (4, 2) and np.all(loss[-1] < loss[0])


def test_rnn_learns_on_tiny_text(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abcabcabd " * 60)
    args = _cli.build_parser().parse_args(["hamlet-rnn", "--text", str(path)])
    ds, info = _cli.load_data("hamlet-rnn", _cli.Budget(3), args)
    assert info["vocab"] == 5 and ds.train_x.shape[1] == _cli.SEQUENCE_LENGTH
    history = train(setup_for("hamlet-rnn", vocab=5), {"k": arms_for("hamlet-rnn")["kaiming_normal"]}, [1], ds, 3)
    loss = np.stack(history.loss)
    assert loss[-1, 0] < loss[0, 0]


@pytest.mark.parametrize(
    "name,input_shape,layers",
    [
        ("experiments.networks:audit_rnn", None, {"input", "output"}),
        ("experiments.networks:audit_cnn", (2, 28, 28), {"PatchConv_0", "PatchConv_1", "Dense_0"}),
    ],
)
def test_the_study_networks_audit_as_user_models(name, input_shape, layers):
    """mc no longer ships the study's networks; from a clone they audit as ``package.module:factory``."""
    model, inputs, fresh = mc.reference_model(name, flaxinit.he_normal(), input_shape=input_shape)
    result = mc.audit(model, inputs, 64, key=0, fresh_inputs=fresh)
    assert layers <= {layer.path for layer in result.layers}
    assert all(np.isfinite(layer.rms) and layer.rms > 0 for layer in result.layers)


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_writes_metrics_plot_and_report(tmp_path):
    argv = ["counting", "--quick", "--epochs", "3", "--seeds", "1,2", "--out", str(tmp_path), "--quiet"]
    assert _cli.main(argv) == 0
    doc = json.loads((tmp_path / "counting" / "metrics.json").read_text())
    assert doc["partial"] is False and doc["settings"]["epochs_completed"] == 3
    assert len(doc["rows"]) == 3 * 5 * 2  # epochs x schemes x seeds
    assert {r["scheme"] for r in doc["summary"]} == set(arms_for("counting"))
    assert (tmp_path / "counting" / "metrics.csv").read_text().count("\n") == 31
    assert (tmp_path / "counting" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert "## counting" in (tmp_path / "report.md").read_text()


def test_demos_json_shape():
    result = demos.run_demos(epochs=3, max_updates=50)
    assert set(result) == {"single_example_steps", "all_pairs_best_correct"}
    for table in result.values():
        assert list(table) == list(demos.DEMO_SCHEMES)
    assert all(v is None or (isinstance(v, int) and 0 <= v <= 50) for v in result["single_example_steps"].values())
    assert all(isinstance(v, int) and 0 <= v <= 32 for v in result["all_pairs_best_correct"].values())


def test_all_ones_weights_never_break_symmetry():
    """The article's cautionary baseline: with all-ones weights every hidden unit of a
    layer computes the same function and gets the same update, forever."""
    init = flaxinit.ones()
    module = CountingNet({"default": init})
    x, y = demos.counting_data().train_x, demos.counting_data().train_y
    p = module.init(jax.random.key(1), x[0])["params"]
    step = jax.jit(jax.grad(lambda q, xi, yi: ((module.apply({"params": q}, xi) - yi) ** 2).sum() / 2))
    for i in range(64):
        g = step(p, x[i % 32], y[i % 32])
        p = jax.tree.map(lambda w, d: w - d, p, g)
    for layer in ("Dense_0", "Dense_1"):
        kernel = np.asarray(p[layer]["kernel"])
        # Equal on this CPU. Elsewhere a column in a SIMD tail lane may round apart, by about
        # u = 6e-8 relative per step; any real asymmetry (a random init has ~0.3) is O(1).
        np.testing.assert_allclose(kernel, np.broadcast_to(kernel[:, :1], kernel.shape), rtol=0,
                                   atol=1e-4 * np.abs(kernel).max())  # fmt: skip


@pytest.mark.parametrize(
    "argv,message",
    [
        (["nonet"], "invalid choice"),
        (["counting", "--quick", "--full"], "not allowed with argument"),
        (["counting", "--seeds", "a"], "must be distinct comma-separated integers"),
        (["counting", "--seeds", "1,1"], "must be distinct"),
        (["counting", "--epochs", "0"], "must be a positive integer"),
        (["mnist-cnn", "--mnist-dir", "/nonexistent/mnist"], "not a folder"),
        (["hamlet-rnn", "--text", "/nonexistent/t.txt"], "no such file"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(argv, message, capsys, tmp_path):
    assert _cli.main([*argv, "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m experiments: error:") and message in err


# --- the residual and proxy-init demos as subcommands ---------------------------------------------

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"


def summary_format(text: str) -> set[str]:
    """A summary's headings and table headers with every number masked: its format, not its values."""
    masked = (re.sub(r"\d[\d.e+-]*", "0", line) for line in text.splitlines())
    return {line for line in masked if line.startswith("#") or re.match(r"\| (init|arm|target step) \|", line)}


def strict_json(path: Path) -> dict:
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.slow  # whole quick runs of the demos (tens of seconds each): CI's second tier
@pytest.mark.parametrize("demo,folder", [("residual", "residual"), ("proxy-init", "proxy_init")])
def test_demo_quick_run_reproduces_the_stored_summary_format(demo, folder, tmp_path):
    """``--quick`` runs the whole pipeline (seconds) and writes the stored run's summary format."""
    assert _cli.main([demo, "--quick", "--seeds", "3,4", "--out", str(tmp_path), "--quiet"]) == 0
    results = strict_json(tmp_path / "results.json")
    assert results.get("quick", True) and (results.get("machine") or results["environment"]["machine"])["cpu"]
    stored = summary_format((RESULTS / folder / "summary.md").read_text())
    written = summary_format((tmp_path / "summary.md").read_text())
    assert written and written <= stored
    assert "seeds" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["residual", "--full"], "--full do(es) not apply to residual"),
        (["residual", "--epochs", "3"], "--epochs do(es) not apply"),
        (["counting", "--steps", "100"], "--steps do(es) not apply to counting"),
        (["proxy-init", "--quick", "--steps", "30"], "--steps must be a multiple of 25"),
        (["proxy-init", "--noises", "-1"], "must be comma-separated numbers >= 0"),
        (["residual", "--resume"], "--resume do(es) not apply to residual"),
        (["mutransfer", "--quick", "--seeds", "5"], "needs at least two seeds"),
        (["mutransfer", "--quick", "--sweeps", "mlp,width"], "--sweeps must be comma-separated names of mlp,"),
        (["residual", "--sweeps", "mlp"], "--sweeps do(es) not apply to residual"),
        (["residual", "--arms", "sp"], "--arms do(es) not apply to residual"),
        (["mutransfer", "--quick", "--arms", "muon"], "--arms must be comma-separated arms of the sweeps run"),
        (["mutransfer", "--quick", "--sweeps", "batch", "--arms", "muon_sp"], "(mup, mup_rule), got 'muon_sp'"),
    ],
)
def test_demo_flags_that_do_not_apply_exit_2(argv, message, capsys):
    assert _cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


# --- mutransfer ----------------------------------------------------------------------------------


SUMMARY_SWEEPS = (("mlp", ("sp", "mup", "muon_sp", "muon_mup"), "widths"),
                  ("transformer", ("sp", "mup", "muon_sp", "muon_mup"), "widths"),
                  ("depth", ("completep", "none"), "depths"), ("batch", ("mup", "mup_rule"), "batch_sizes"),
                  ("steps", ("mup", "mup_rule"), "steps"))  # fmt: skip


def _summary_shape(summary: dict, ran: dict[str, tuple[str, ...]] | None = None) -> None:
    """summary.json's structure: per sweep and arm, the sizes, an optimum per size, edges, spread;
    only the arms ``ran`` (default: every arm of every sweep); every arm's machine."""
    for sweep, arms, unit in SUMMARY_SWEEPS:
        arms = arms if ran is None else ran.get(sweep, ())
        assert set(summary[sweep]) == set(arms), sweep
        assert {f"{sweep}_{arm}" for arm in arms} <= set(summary["machines"])
        for arm in arms:
            entry = summary[sweep][arm]
            assert set(entry) == {unit, "optimal_log2_lr", "at_edge", "spread"}
            assert len(entry[unit]) == len(entry["optimal_log2_lr"]) == len(entry["at_edge"]) >= 2
            assert all(isinstance(e, bool) for e in entry["at_edge"])
            values = entry["optimal_log2_lr"]
            if None not in values:
                assert entry["spread"] == pytest.approx(max(values) - min(values), abs=1e-12)
    assert summary["machine"]["cpu"] and summary["settings"]["seeds"] >= 2
    assert all(m["cpu"] for m in summary["machines"].values())


def test_the_stored_mutransfer_summary_has_every_sweep():
    _summary_shape(strict_json(RESULTS / "mutransfer" / "summary.json"))


def test_mutransfer_resume_refuses_other_settings(tmp_path, capsys):
    from flaxinit.tooling import write_json

    write_json(tmp_path / "mlp_sp.json", {"settings": {"sweep": "mlp", "steps": 1}, "sizes": {}, "partial": True})
    assert _cli.main(["mutransfer", "--quick", "--resume", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was run with other settings" in err and "steps" in err
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.slow  # a quick run of two sweeps (eight compiled programs, about a minute on a CPU): CI's second tier
def test_mutransfer_quick_run_ctrl_c_and_resume(tmp_path, monkeypatch):
    """``--quick --sweeps transformer,batch`` (their Adam arms) writes those arms' JSON, the plots, summary.json in
    its documented structure and summary.md; a Ctrl-C after a size keeps it (exit 130, summary
    marked partial), and ``--resume`` trains only what is missing and ends where an
    uninterrupted run would. Another run of other sweeps keeps these in its summary."""
    real = mc.lr_transfer
    trained = []

    def counting(stop_after=None):
        def lr_transfer(model, sizes, *args, on_size=None, **kwargs):
            arm = (model.name, kwargs.get("sweep", "width"), kwargs["parametrization"], kwargs.get("optimizer"))

            def hook(size, merits):
                on_size(size, merits)
                if arm == stop_after and size == sizes[0]:
                    raise KeyboardInterrupt

            trained.extend((*arm, s) for s in sizes if s not in kwargs["done"])
            return real(model, sizes, *args, on_size=hook, **kwargs)

        return lr_transfer

    common = ["mutransfer", "--quick", "--seeds", "3,4", "--out", str(tmp_path), "--quiet"]
    argv = [*common, "--arms", "sp,mup,mup_rule", "--sweeps", "batch,transformer"]  # the Adam arms
    with monkeypatch.context() as m:
        m.setattr(mc, "lr_transfer", counting(stop_after=("transformer", "width", "sp", "adam")))
        assert _cli.main(argv) == 130
    partial = strict_json(tmp_path / "summary.json")
    assert partial["partial"] and partial["transformer"] == {} and partial["batch"] == {} and partial["mlp"] == {}
    saved = strict_json(tmp_path / "transformer_sp.json")
    assert saved["partial"] and list(saved["sizes"]) == ["8"] and saved["result"] is None
    assert "partial run" in (tmp_path / "summary.md").read_text()

    trained.clear()
    with monkeypatch.context() as m:
        m.setattr(mc, "lr_transfer", counting())
        assert _cli.main([*argv, "--resume"]) == 0
    assert ("transformer", "width", "sp", "adam", 8) not in trained
    assert ("transformer", "width", "sp", "adam", 16) in trained
    assert len(trained) == 7  # 16, then 2 + 2 + 2 sizes
    assert {t[1] for t in trained} == {"width", "batch"}  # in the sweeps chosen only
    rules = {t[3].__name__ for t in trained if t[1] == "batch"}
    assert rules == {"_decayed_adamw", "_batch_rule"}
    summary = strict_json(tmp_path / "summary.json")
    assert not summary["partial"] and summary["quick"]
    adam = {"transformer": ("sp", "mup"), "batch": ("mup", "mup_rule")}
    _summary_shape(summary, adam)
    for name in ("transformer_sp", "transformer_mup", "batch_mup", "batch_mup_rule"):
        doc = strict_json(tmp_path / f"{name}.json")
        assert not doc["partial"] and doc["result"]["seeds"] == 2 and doc["machine"]["cpu"]
        assert sorted(map(int, doc["sizes"])) == doc["result"]["sizes"]
    assert strict_json(tmp_path / "batch_mup_rule.json")["settings"]["rule"] is True
    for plot in ("transformer.png", "batch.png"):
        assert (tmp_path / plot).stat().st_size > 1000
    text = (tmp_path / "summary.md").read_text()
    assert "| SP |" in text and "| μP |" in text and "| μP with the rule |" in text and "spread" in text
    assert "What the data show" in text and "partial run" not in text and "(not run)" in text
    # the transformer's SP size 8 came from the saved file: same bits as it was saved
    resumed = strict_json(tmp_path / "transformer_sp.json")
    assert resumed["sizes"]["8"] == saved["sizes"]["8"]
    # a run of another sweep summarizes the saved complete arms too, training none of them again
    trained.clear()
    with monkeypatch.context() as m:
        m.setattr(mc, "lr_transfer", counting())
        assert _cli.main([*common, "--sweeps", "steps"]) == 0
    assert {t[1] for t in trained} == {"steps"}
    _summary_shape(strict_json(tmp_path / "summary.json"), {**adam, "steps": ("mup", "mup_rule")})


@pytest.mark.slow  # a quick run of the MLP's Muon arms (four compiled programs)
def test_mutransfer_muon_arms_quick_run(tmp_path):
    """``--arms muon_sp,muon_mup``: optax's Muon under SP and mup.muon under μP, their own sizes and
    grid, figure and table; summary.json holds them beside the sweep's other arms."""
    argv = ["mutransfer", "--quick", "--seeds", "3,4", "--out", str(tmp_path), "--quiet", "--sweeps", "mlp",
            "--arms", "muon_sp,muon_mup"]  # fmt: skip
    assert _cli.main(argv) == 0
    summary = strict_json(tmp_path / "summary.json")
    _summary_shape(summary, {"mlp": ("muon_sp", "muon_mup")})
    arms = summary["settings"]["arms"]
    assert (arms["mlp_muon_sp"]["optimizer"], arms["mlp_muon_mup"]["optimizer"]) == ("optax.contrib.muon", "mup.muon")
    assert arms["mlp_muon_mup"]["log2_lrs"] != arms["mlp_mup"]["log2_lrs"]  # Muon's own grid
    assert (tmp_path / "mlp_muon.png").stat().st_size > 1000 and not (tmp_path / "mlp.png").exists()
    text = (tmp_path / "summary.md").read_text()
    assert "### MLP on MNIST, Muon" in text and "| optax's Muon (SP) |" in text and "| mup.muon (μP) |" in text
    assert "MLP on MNIST, Muon: mup.muon (μP)'s optimum moves by" in text


@pytest.mark.parametrize(
    "arm,parametrization,module", [("muon_sp", "sp", "optax.contrib"), ("muon_mup", "mup", "flaxinit.mup")]
)
def test_the_muon_arms_train_their_optimizer_under_their_parametrization(arm, parametrization, module, monkeypatch):
    from experiments import mutransfer

    cfg = mutransfer.QUICK
    data = mutransfer.Data(np.zeros((4, 784), np.float32), np.zeros(4, np.int32), "zeros")
    _, kwargs = mutransfer.sweep_call("mlp", arm, cfg, data)
    assert kwargs["parametrization"] == parametrization and kwargs["steps"] == cfg.muon["mlp"].steps
    called = []
    monkeypatch.setattr(f"{module}.muon", lambda *args, **kw: called.append((args, kw)) or "tx")
    assert kwargs["optimizer"](0.25, "shapes") == "tx"
    assert called == ([((0.25,), {})] if arm == "muon_sp" else [((0.25,), {"shapes": "shapes"})])
