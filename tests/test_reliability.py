"""Issue 18: nothing silently wrong, nothing of the user's lost. One test (or more) per finding.

1 imports without extras, 2 MACs counted or refused, 3 shrink's run folder, 4 export --overwrite
stays inside its folder, 5 a failed export leaves nothing, 6 one-line errors, 7 --model-file
classes from the current folder, 8 calibration ties warned, 9 quantize's default linear quotient,
10 shrink validates first, 11 messages that name the split / batch, 12 docs, 13 plots.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import unitprune
from unitprune.cli import main
from unitprune.mcu.export import ExportError, export_c

from . import qmodels

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("unitprune: ")]
    assert len(lines) == 1 and lines[0].startswith("unitprune: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def small_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(108, 4)).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A user's whole model (pickled nn.Sequential), its state_dict and a small data file."""
    folder = tmp_path_factory.mktemp("user")
    model = small_model()
    torch.save(model, folder / "model.pt")
    torch.save(model.state_dict(), folder / "state.pt")
    g = torch.Generator().manual_seed(0)
    data = {f"{x}_{split}": t for split in ("train", "val", "test") for x, t in
            (("x", torch.rand(24, 1, 8, 8, generator=g)), ("y", torch.randint(0, 4, (24,), generator=g)))}
    torch.save(data, folder / "data.pt")
    (folder / "garbage.pt").write_bytes(b"\x00not a torch file at all" * 10)
    return folder


# ---------------------------------------------------------------------------------------------
# 1. import unitprune needs no extra and loads neither torch_pruning, the training loop nor sklearn
# ---------------------------------------------------------------------------------------------

def test_import_unitprune_loads_no_torch_pruning_training_loop_or_sklearn():
    code = ("import sys, unitprune, unitprune.cli\n"
            "heavy = [m for m in ('torch_pruning', 'sklearn', 'unitprune.training', 'unitprune.shrink.method') "
            "if m in sys.modules]\n"
            "print(heavy)\n"
            "assert unitprune.shrink.ShrinkConfig is unitprune.ShrinkConfig\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_shrink_without_torch_pruning_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch_pruning", None)  # import fails as if not installed
    code, _, err = run_cli(["shrink", "--model", "digits", "--data", "digits", "--preset", "atmega2560"], capsys)
    assert_one_line_error(code, err, "pip install 'unitprune[shrink]'")


# ---------------------------------------------------------------------------------------------
# 2. every MAC counted (formulas checked against hand counts) or refused naming the layer
# ---------------------------------------------------------------------------------------------

class _WithHead(nn.Module):
    def __init__(self, body: nn.Module, features: int):
        super().__init__()
        self.body, self.head = body, nn.Linear(features, 2)

    def forward(self, *x):
        y = self.body(*x)
        y = y[0] if isinstance(y, tuple) else y
        return self.head(y.reshape(y.shape[0], -1))


@pytest.mark.parametrize("grad", [False, True])
def test_lstm_gru_rnn_macs_equal_a_hand_count(grad):
    from unitprune.accounting import dense_macs

    T, B, I, H = 5, 2, 8, 6
    x = torch.randn(T, B, I)
    cases = [  # (module, hand count: per step and sample, G*H*(I + H) per layer and direction)
        (nn.LSTM(I, H), T * B * (4 * H * I + 4 * H * H)),
        (nn.GRU(I, H), T * B * (3 * H * I + 3 * H * H)),
        (nn.RNN(I, H), T * B * (H * I + H * H)),
        (nn.LSTM(I, H, num_layers=2, bidirectional=True),
         T * B * 2 * (4 * H * I + 4 * H * H) + T * B * 2 * (4 * H * 2 * H + 4 * H * H)),
        (nn.LSTM(I, H, proj_size=3), T * B * (4 * H * I + 4 * H * 3 + 3 * H)),
    ]
    for module, hand in cases:
        with torch.set_grad_enabled(grad):
            assert dense_macs(module.eval(), x) == hand, module
    for cell, gates in ((nn.LSTMCell(I, H), 4), (nn.GRUCell(I, H), 3), (nn.RNNCell(I, H), 1)):
        assert dense_macs(cell.eval(), x[0]) == B * gates * H * (I + H), cell


def test_mac_report_of_an_lstm_model_counts_the_recurrent_work():
    """The issue's case: LSTM(8, 6) + Linear: the report counted 72 MACs of the real 6,792."""
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.fc = nn.LSTM(8, 6, batch_first=True), nn.Linear(6, 3)

        def forward(self, x):
            return self.fc(self.lstm(x)[0][:, -1])

    x = torch.randn(4, 5, 8)  # batch 4, 5 steps
    report = unitprune.mac_report(unitprune.convert(Tagger().eval()), x)
    lstm = 4 * 5 * (24 * 8 + 24 * 6)  # 6,720
    assert report.other_layers["lstm"].dense == lstm
    assert report.total.dense == lstm + 4 * 6 * 3
    assert report.skipped_fraction < 0.01


def test_bilinear_macs_equal_a_hand_count():
    from unitprune.accounting import dense_macs

    B, I, J, O = 3, 4, 5, 2
    bilinear = nn.Bilinear(I, J, O)
    x1, x2 = torch.randn(B, I), torch.randn(B, J)
    # outer product x1 x2^T per sample, then one MAC per weight element and sample
    assert dense_macs(bilinear, x1, x2) == B * I * J + B * O * I * J
    assert dense_macs(lambda a, b: torch.nn.functional.bilinear(a, b, bilinear.weight), x1, x2) == \
        B * I * J + B * O * I * J


@pytest.mark.parametrize("grad", [False, True])
def test_attention_macs_equal_a_hand_count_on_the_fast_path_too(grad):
    from unitprune.accounting import dense_macs

    B, L, S, E, H, F = 2, 5, 7, 8, 2, 16
    mha = nn.MultiheadAttention(E, H, batch_first=True).eval()
    q, kv = torch.randn(B, L, E), torch.randn(B, S, E)
    projections = B * (L + 2 * S) * E * E + B * L * E * E
    scores_and_values = 2 * B * L * S * E
    with torch.set_grad_enabled(grad):  # no_grad + eval: the fused _native_multi_head_attention
        assert dense_macs(mha, q, kv, kv) == projections + scores_and_values
        assert dense_macs(mha, q, q, q) == B * 4 * L * E * E + 2 * B * L * L * E
        layer = nn.TransformerEncoderLayer(E, H, F, batch_first=True).eval()
        assert dense_macs(layer, q) == B * 4 * L * E * E + 2 * B * L * L * E + 2 * B * L * E * F
    x = torch.randn(B, H, L, E // H)
    assert dense_macs(lambda a: torch.nn.functional.scaled_dot_product_attention(a, a, a), x) == \
        2 * B * H * L * L * (E // H)


def test_matrix_vector_products_and_int_mm_are_counted():
    from unitprune.accounting import dense_macs

    a, v = torch.randn(3, 4), torch.randn(4)
    assert dense_macs(lambda: torch.mv(a, v)) == 12
    assert dense_macs(lambda: a @ v) == 12
    assert dense_macs(lambda: v @ v) == 4
    assert dense_macs(lambda: torch.addmv(torch.zeros(3), a, v)) == 12
    assert dense_macs(lambda: torch.randn(2, 3, 4) @ v) == 24
    assert dense_macs(lambda: torch.einsum("bij,bjk->bik", torch.randn(2, 3, 4), torch.randn(2, 4, 5))) == 120
    bag = nn.EmbeddingBag(10, 4, mode="sum")
    idx = torch.tensor([[1, 2, 3]])
    assert dense_macs(lambda: bag(idx, per_sample_weights=torch.ones(1, 3))) == 3 * 4


def test_an_op_without_a_formula_is_refused_naming_the_layer():
    from unitprune.mac_formulas import UncountedOperatorError

    class Spectral(nn.Module):
        def forward(self, x):
            return torch.fft.rfft(x).abs()

    model = nn.Sequential(nn.Linear(8, 8), Spectral(), nn.Flatten(), nn.Linear(5, 2)).eval()
    with pytest.raises(UncountedOperatorError, match=r"layer '1' \(Spectral\).*_fft_r2c"):
        unitprune.mac_report(unitprune.convert(model), torch.randn(2, 8))


# ---------------------------------------------------------------------------------------------
# 3 + 10. shrink: the run-folder guard, --overwrite, and every check before any write
# ---------------------------------------------------------------------------------------------

SHRINK = ["shrink", "--model", "digits", "--data", "digits", "--preset", "atmega2560", "--epochs", "1",
          "--methods", "ttp", "--no-progress"]


def test_shrink_refuses_a_non_empty_run_dir_and_overwrite_keeps_other_files(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "report.md").write_text("the user's own report")
    code, _, err = run_cli(SHRINK + ["--run-dir", run_dir], capsys)
    assert_one_line_error(code, err, "not empty", "--overwrite")
    assert snapshot(run_dir) == {"report.md": b"the user's own report"}
    (run_dir / "report.md").unlink()
    (run_dir / "notes.txt").write_text("mine")
    code, out, err = run_cli(SHRINK + ["--run-dir", run_dir, "--overwrite"], capsys)
    assert code == 0, err
    assert (run_dir / "notes.txt").read_text() == "mine" and (run_dir / "shrink.json").is_file()


@pytest.mark.parametrize("extra, needle", [
    (["--epochs", "2", "--prune-epochs", "5"], "prune_epochs"),
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--data", "no-such-set"], "no-such-set"),
    (["--sram", "-1KB"], "-1KB"),
    (["--weights", "GARBAGE"], "not a state_dict"),
    (["--weights", "MODEL"], "not a state_dict"),
    (["--weights", "OTHER_ARCH"], "does not fit the 'digits' model"),
])
def test_shrink_validates_before_training_or_writing(tmp_path, files, capsys, extra, needle):
    replace = {"GARBAGE": files / "garbage.pt", "MODEL": files / "model.pt", "OTHER_ARCH": files / "state.pt"}
    extra = [replace.get(a, a) for a in extra]
    run_dir = tmp_path / "run"
    code, _, err = run_cli(SHRINK + ["--run-dir", run_dir] + extra, capsys)
    assert_one_line_error(code, err, needle)
    assert "expected one argument" not in err
    assert not run_dir.exists()  # no empty folder, no base.pt


# ---------------------------------------------------------------------------------------------
# 4 + 5. export: --overwrite removes only files inside its folder; a failed export leaves nothing
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_export_overwrite_never_removes_a_file_outside_its_folder(tmp_path, how):
    qmodel = qmodels.mnist_like(np.random.default_rng(1))
    out = tmp_path / "export"
    export_c(qmodel, out)
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file")
    if how == "symlink":
        (out / "link").symlink_to(tmp_path)
    name = {"absolute": str(victim), "dotdot": "../victim.txt", "symlink": "link/victim.txt"}[how]
    plan = json.loads((out / "memory_plan.json").read_text())
    plan["files"].append(name)
    (out / "memory_plan.json").write_text(json.dumps(plan))
    before = snapshot(out)
    with pytest.raises(ExportError, match="nothing was removed"):
        export_c(qmodel, out, overwrite=True)
    assert victim.read_text() == "the user's file"
    assert snapshot(out) == before


def test_member_path_refuses_escapes(tmp_path):
    from unitprune.run_folder import OutputPathError, member_path

    (tmp_path / "a").mkdir()
    assert member_path(tmp_path, "a/b.c") == tmp_path / "a" / "b.c"
    for name in ("/etc/passwd", "../x", "a/../../x", ""):
        with pytest.raises(OutputPathError):
            member_path(tmp_path, name)


def test_a_failed_export_leaves_nothing_and_a_retry_works(tmp_path, monkeypatch):
    import shutil

    import unitprune.mcu.export.manifest as export_module

    qmodel = qmodels.mnist_like(np.random.default_rng(1))
    out = tmp_path / "export"
    calls = {"n": 0}
    real_copy = shutil.copyfile

    def disk_full(src, dst, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(export_module.shutil, "copyfile", disk_full)
    with pytest.raises(OSError, match="No space left"):
        export_c(qmodel, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither the folder nor a temporary sibling
    monkeypatch.setattr(export_module.shutil, "copyfile", real_copy)
    result = export_c(qmodel, out)  # the retry is not refused
    assert sorted(result.files) == sorted(snapshot(out))
    # the same failure over an earlier export leaves that export as it was
    before = snapshot(out)
    calls["n"] = 0
    monkeypatch.setattr(export_module.shutil, "copyfile", disk_full)
    with pytest.raises(OSError):
        export_c(qmodel, out, overwrite=True, variant="dense")
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_staged_folder_moves_files_in_and_leaves_others(tmp_path):
    from unitprune.run_folder import OutputPathError, staged_folder

    target = tmp_path / "t"
    target.mkdir()
    (target / "mine.txt").write_text("mine")
    (target / "old.txt").write_text("old")
    with staged_folder(target, overwrite=True) as stage:
        (stage / "sub").mkdir()
        (stage / "sub" / "new.txt").write_text("new")
        (stage / "old.txt").write_text("replaced")
    assert snapshot(target) == {"mine.txt": b"mine", "old.txt": b"replaced", "sub/new.txt": b"new"}
    with pytest.raises(OutputPathError, match="not empty"):
        with staged_folder(target, overwrite=False):
            pass


# ---------------------------------------------------------------------------------------------
# 6. user errors: one line, exit status 2, no traceback
# ---------------------------------------------------------------------------------------------

def _unwritable(tmp_path: Path) -> Path:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    return blocker / "sub"  # a folder cannot be made under a file, not even by root


@pytest.mark.parametrize("case", ["weights-module", "weights-garbage", "threads-0", "output-unwritable",
                                  "state-dict-unwritable", "lr-nan", "sweep-run-dir-unwritable",
                                  "export-out-dir-unwritable", "shrink-run-dir-unwritable", "data-root-empty",
                                  "run-dir-blank"])
def test_user_errors_are_one_line_with_exit_status_2(tmp_path, files, capsys, monkeypatch, case):
    calibrate = ["calibrate", "--data", files / "data.pt", "--model-file", files / "model.pt", "--trust-model-file"]
    with_weights = ["calibrate", "--data", files / "data.pt", "--model", "digits"]
    argv, needle = {
        "weights-module": (with_weights + ["--weights", files / "model.pt"], "not a state_dict"),
        "weights-garbage": (with_weights + ["--weights", files / "garbage.pt"], "not a state_dict"),
        "threads-0": (calibrate + ["--threads", "0"], "--threads must be >= 1"),
        "output-unwritable": (calibrate + ["--output", _unwritable(tmp_path) / "t.json"], "is a file, not a folder"),
        "state-dict-unwritable": (calibrate + ["--save-state-dict", _unwritable(tmp_path) / "s.pt"], "not a folder"),
        "lr-nan": (["train", "--data", "digits", "--lr", "nan"], "--lr must be a finite number"),
        "sweep-run-dir-unwritable": (["sweep", "--data", files / "data.pt", "--model-file", files / "model.pt",
                                      "--trust-model-file", "--run-dir", _unwritable(tmp_path)], "not a folder"),
        "export-out-dir-unwritable": (["export", "--data", files / "data.pt", "--model-file", files / "model.pt",
                                       "--trust-model-file", "--out-dir", _unwritable(tmp_path)], "not a folder"),
        "shrink-run-dir-unwritable": (SHRINK + ["--run-dir", _unwritable(tmp_path)], "not a folder"),
        # an unset shell variable: Path('') is the current folder, where the cache would be written
        "data-root-empty": (["data", "synth-speech", "--data-root", ""], "--data-root is empty"),
        "run-dir-blank": (["train", "--data", "digits", "--run-dir", " "], "--run-dir is empty"),
    }[case]
    before = snapshot(tmp_path)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # empty: an empty folder option would mean this folder, nothing may appear
    code, _, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, needle)
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------------
# 7. --model-file: the user's class is importable from the current folder (console script too)
# ---------------------------------------------------------------------------------------------

def test_model_file_class_from_the_current_folder(tmp_path, monkeypatch):
    from unitprune.experiments.inputs import load_model

    (tmp_path / "mymodels_h18.py").write_text(
        "import torch.nn as nn\n"
        "class Tiny(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(4, 2)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x.flatten(1))\n")
    saver = ("import sys, torch; sys.path.insert(0, '.'); import mymodels_h18; "
             "torch.save(mymodels_h18.Tiny(), 'tiny.pt')")
    subprocess.run([sys.executable, "-c", saver], cwd=tmp_path, check=True, timeout=300)
    monkeypatch.chdir(tmp_path)
    cwd = os.getcwd()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", cwd)])  # as the console script
    monkeypatch.delitem(sys.modules, "mymodels_h18", raising=False)
    model, name = load_model(model_file="tiny.pt", trust_model_file=True)
    assert type(model).__name__ == "Tiny" and name == "tiny"
    assert cwd not in sys.path  # sys.path restored


# ---------------------------------------------------------------------------------------------
# 8. calibration with tied products warns (API and CLI summary)
# ---------------------------------------------------------------------------------------------

def _tied_model_and_inputs():
    model = nn.Sequential(nn.Linear(12, 4)).eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -1.0, 0.0] * 4] * 4))
    x = torch.randint(0, 2, (32, 12), generator=torch.Generator().manual_seed(0)).float()  # binary
    return model, x


def test_calibration_warns_when_ties_make_the_skipped_share_miss_the_percentile():
    from unitprune.calibrate import CalibrationTieWarning

    model, x = _tied_model_and_inputs()
    unit_model = unitprune.convert(model)
    with pytest.warns(CalibrationTieWarning, match=r"layer '0': percentile 20 skips 100.0%"):
        unitprune.calibrate(unit_model, x, percentile=20)
    # oracle: every nonzero product is 1, so |x*w| <= T skips all of them
    products = (x.unsqueeze(1) * model[0].weight.unsqueeze(0)).abs()
    assert float(unit_model[0].threshold) == 1.0 and bool((products[products > 0] <= 1.0).all())
    with warnings.catch_warnings():  # continuous products: no warning
        warnings.simplefilter("error", CalibrationTieWarning)
        unitprune.calibrate(unitprune.convert(small_model()), torch.rand(16, 1, 8, 8), percentile=20)


def test_calibrate_cli_summary_shows_the_tie_warning(tmp_path, capsys):
    model, x = _tied_model_and_inputs()
    torch.save(model, tmp_path / "m.pt")
    y = torch.zeros(32, dtype=torch.long)
    torch.save({"x_val": x, "y_val": y, "x_test": x, "y_test": y}, tmp_path / "d.pt")
    code, out, err = run_cli(["calibrate", "--model-file", tmp_path / "m.pt", "--trust-model-file",
                              "--data", tmp_path / "d.pt", "--percentile", "10"], capsys)
    assert code == 0, err
    assert "warning: layer '0': percentile 10 skips 100.0%" in out


# ---------------------------------------------------------------------------------------------
# 9. quantize(convert(model), x) works with the defaults
# ---------------------------------------------------------------------------------------------

def test_quantize_of_a_default_converted_model_picks_a_supported_linear_quotient():
    from unitprune.mcu.reference import quantize_input, run_reference

    model = small_model()
    x = torch.rand(16, 1, 8, 8)
    qmodel = unitprune.quantize(unitprune.convert(model), x)  # approx="exact" by default
    assert qmodel.linear_quotient == "table"
    outputs, _ = run_reference(qmodel, quantize_input(qmodel, x))
    assert outputs.shape[0] == 16
    bitshift = unitprune.quantize(unitprune.convert(model, unitprune.UnITConfig(approx="bitshift")), x)
    assert bitshift.linear_quotient == "bitshift"
    with pytest.raises(ValueError, match="needs linear_quotient='table'"):  # an explicit wrong choice still fails
        unitprune.quantize(unitprune.convert(model), x, linear_quotient="bitshift")


# ---------------------------------------------------------------------------------------------
# 11. messages that name the problem
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("split", ["train", "test"])
def test_nan_or_inf_in_a_data_file_names_the_split(tmp_path, files, capsys, split):
    data = torch.load(files / "data.pt")
    data[f"x_{split}"][3, 0, 2, 2] = float("inf") if split == "train" else float("nan")
    torch.save(data, tmp_path / "bad.pt")
    code, _, err = run_cli(["calibrate", "--model-file", files / "model.pt", "--trust-model-file",
                            "--data", tmp_path / "bad.pt"], capsys)
    assert_one_line_error(code, err, f"x_{split} contains NaN or Inf (first in sample 3)")


def test_calibration_batches_of_different_sizes_are_named():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    unit_model = unitprune.convert(model.eval())
    batches = [torch.rand(2, 1, 8, 8), torch.rand(2, 1, 10, 10)]
    with pytest.raises(ValueError, match=r"batch 1 .*\(1, 10, 10\).*batch 0.*\(1, 8, 8\)"):
        unitprune.calibrate(unit_model, batches)


# ---------------------------------------------------------------------------------------------
# 12. docs
# ---------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def test_docs_do_not_repeat_the_stale_claims():
    quantization = (ROOT / "docs" / "quantization.md").read_text()
    assert "no average pooling" not in quantization
    assert "outputs equal the original's" not in (ROOT / "README.md").read_text()
    assert "computes exactly the dense layer" not in (ROOT / "docs" / "semantics.md").read_text()


def test_export_doc_sram_figures_are_the_exporters():
    """docs/export.md's memory figures of the MNIST model, recomputed from the exporter's plan."""
    from unitprune.mcu.export.memory_plan import model_descriptor_bytes, plan_memory, scratch_sizes
    from unitprune.mcu.targets.specs import LAYOUTS

    text = (ROOT / "docs" / "export.md").read_text()
    qmodel = qmodels.mnist_like(np.random.default_rng(0))
    host, avr = (plan_memory(qmodel, scratch_sizes(qmodel), model_descriptor_bytes(qmodel, LAYOUTS[name], "unit",
                                                                                   "bitshift"))
                 for name in ("host", "avr"))
    assert f"descriptors {host.descriptor_bytes} (host pointers; {avr.descriptor_bytes} on AVR/MSP430" in text
    assert f"| unit | bitshift |" in text and f"{host.peak_sram_bytes:,} B | yes |" in text
    assert f"model SRAM of the default export is\n{avr.peak_sram_bytes:,} B" in text


# ---------------------------------------------------------------------------------------------
# 13. plots: off-scale points marked
# ---------------------------------------------------------------------------------------------

def test_accuracy_vs_macs_marks_points_above_the_plot(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from unitprune.experiments import plot

    captured = {}
    real_close = plt.close
    monkeypatch.setattr(plot.plt, "close", lambda fig: captured.setdefault("fig", fig))
    results = {"model": "m", "dataset": "d", "budget_points": 1.0, "methods": {
        "unpruned": [{"macs_remaining_fraction": 1.0, "accuracy_drop": 0.0}],
        "ttp": [{"macs_remaining_fraction": f, "accuracy_drop": d} for f, d in ((0.8, 0.5), (0.3, 9.0), (0.2, 25.0))]}}
    plot.plot_accuracy_vs_macs(results, tmp_path / "f.png")
    ax = captured["fig"].axes[0]
    top = ax.get_ylim()[1]
    edge = [line for line in ax.lines if line.get_marker() == "^" and len(line.get_xdata())]
    assert len(edge) == 1 and list(edge[0].get_xdata()) == [30.0, 20.0] and set(edge[0].get_ydata()) == {top}
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("above the plot (2 points, up to +25.0)" in label for label in labels)
    real_close(captured["fig"])


def test_accuracy_vs_resources_has_titles_labelled_budgets_and_few_ticks(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from unitprune.experiments.shrink_study import shrink_report as report

    captured = {}
    real_close = plt.close
    monkeypatch.setattr(report.plt, "close", lambda fig: captured.setdefault("fig", fig))
    document = {"base": {"sram_bytes": 30000, "flash_bytes": 400000, "macs": 3_000_000, "accuracy": 0.98},
                "budget": {"sram_bytes": 8192, "flash_bytes": 262144, "macs": None}}
    points = [{"method": "differentiable", "sram_bytes": s, "flash_bytes": 10 * s, "macs": 100 * s, "accuracy": 0.95}
              for s in (3000, 6000, 8000)]
    report.plot_accuracy_vs_resources(document, points, tmp_path / "r.png")
    fig = captured["fig"]
    fig.canvas.draw()
    assert fig._suptitle is not None and all(ax.get_title() for ax in fig.axes)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "budget 8 KB" in texts and "budget 256 KB" in texts
    for ax in fig.axes:  # visible tick labels do not overlap
        boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text() and t.get_visible()
                 and ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]]
        boxes.sort(key=lambda b: b.x0)
        assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), [t.get_text() for t in ax.get_xticklabels()]
    real_close(fig)
