"""Issue 10: every MAC accounted for, no silent wrong answer, nothing of the user's lost.

One test (or a few) per defect found by trying the library as a new user would; each failed
before its fix. The randomized end-to-end test is in tests/test_end_to_end.py.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
import torch
import torch.nn as nn
import torch.nn.utils.prune as prune
from torch.utils.flop_counter import FlopCounterMode

import unitprune
from unitprune import RuntimeConfig, UnITConfig, UnITConv2d, UnITLinear, backends
from unitprune.experiments import evaluate_unit_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BACKENDS = ["torch"] + (["c"] if backends.available() else [])


def flop_counter_macs(model: nn.Module, x: torch.Tensor) -> int:
    """The independent oracle: torch's own FLOP counter on the dense model, halved."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


class MatmulHead(nn.Module):
    """A model whose forward does a matrix product outside any layer."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 2, 3)
        self.mix = nn.Parameter(torch.randn(6, 4))

    def forward(self, x):
        return torch.matmul(torch.relu(self.conv(x)), self.mix).flatten(1)  # (N, 2, 6, 4) -> (N, 48)


def deconv_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.ConvTranspose2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 12)).eval()


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 4)).eval()


# ----------------------------------------------------------------------------------------
# 1. every MAC of the model accounted for
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_mac_report_counts_layers_unit_does_not_convert(backend):
    model = deconv_model()
    x = torch.randn(3, 1, 4, 4)
    converted = unitprune.convert(model, UnITConfig(backend=backend))
    report = unitprune.mac_report(converted, x)
    assert report.total.dense == flop_counter_macs(model, x)
    # a transposed convolution multiplies every input pixel by every tap of every output channel
    assert report.other_layers["0"].dense == report.other_layers["0"].executed == 3 * (4 * 4) * 1 * 4 * (3 * 3)
    assert report.skipped_fraction == report.total.skipped / report.total.dense  # of the whole model
    assert report.skipped_fraction < report.unit_total.skipped_fraction
    for counts in [*report.per_layer.values(), *report.other_layers.values(), report.total]:
        counts.check()


@pytest.mark.parametrize("backend", BACKENDS)
def test_mac_report_counts_a_matmul_in_forward_as_other(backend):
    model = MatmulHead().eval()
    x = torch.randn(2, 1, 8, 8)
    report = unitprune.mac_report(unitprune.convert(model, UnITConfig(backend=backend)), x)
    assert report.other_layers == {"other": unitprune.MacCounts(dense=2 * 2 * 6 * 4 * 6, executed=2 * 2 * 6 * 4 * 6)}
    assert report.total.dense == flop_counter_macs(model, x)
    assert "other (not UnIT)" in str(report)


def test_sweep_evaluation_uses_whole_model_totals():
    model = deconv_model()
    x, y = torch.randn(5, 1, 4, 4), torch.zeros(5, dtype=torch.long)
    evaluation = evaluate_unit_model(unitprune.convert(model), (x, y), batch_size=2)
    assert evaluation.total.dense == flop_counter_macs(model, x)
    assert set(evaluation.other_layers) == {"0"}


def test_convert_warns_once_naming_each_layer_left_dense(caplog):
    model = nn.Sequential(nn.ConvTranspose2d(1, 2, 3), nn.Conv3d(1, 1, 1), nn.MultiheadAttention(4, 1),
                          nn.Linear(2, 2), nn.Conv2d(1, 1, 1))
    with caplog.at_level(logging.WARNING, logger="unitprune.convert"):
        unitprune.convert(model, ignored_layers=["4"])
    warnings = [r.getMessage() for r in caplog.records if "stay dense" in r.getMessage()]
    assert len(warnings) == 1
    message = warnings[0]
    for name, why in [("'0'", "ConvTranspose2d"), ("'1'", "Conv3d"), ("'2'", "MultiheadAttention"),
                      ("'4'", "Conv2d: in ignored_layers")]:
        assert f"{name} ({why}" in message
    assert "2.out_proj" not in message and "'3'" not in message  # inside attention / converted


# ----------------------------------------------------------------------------------------
# 2. non-finite weights and biases
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("parameter", ["weight", "bias"])
@pytest.mark.parametrize("layer", ["0", "3"])  # conv, linear
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_parameters_are_refused_at_convert(parameter, layer, value):
    model = small_cnn()
    with torch.no_grad():
        getattr(model.get_submodule(layer), parameter).view(-1)[1] = value
    with pytest.raises(ValueError, match=rf"layer '{layer}': {parameter} contains NaN or Inf"):
        unitprune.convert(model)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("parameter", ["weight", "bias"])
@pytest.mark.parametrize("layer", ["0", "3"])
def test_non_finite_parameters_set_after_convert_are_refused(backend, parameter, layer):
    converted = unitprune.convert(small_cnn(), UnITConfig(backend=backend))
    x = torch.randn(2, 1, 8, 8)
    converted(x)  # finite: accepted (and the check is cached)
    with torch.no_grad():
        getattr(converted.get_submodule(layer), parameter).view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match=rf"layer '{layer}': {parameter} contains NaN or Inf"):
        converted(x)


def test_pruned_weights_with_nan_in_the_masked_part_are_refused():
    model = small_cnn()
    prune.l1_unstructured(model[3], "weight", amount=0.5)
    with torch.no_grad():
        model[3].weight_orig[0, 0] = float("inf")  # the largest magnitude: kept by the mask
    with pytest.raises(ValueError, match="layer '3': weight contains NaN or Inf"):
        unitprune.convert(model)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_both_backends_refuse_non_finite_inputs_identically(value):
    if "c" not in BACKENDS:
        pytest.skip("C kernels not built")
    messages = []
    for backend in BACKENDS:
        layer = unitprune.convert(nn.Linear(4, 3), UnITConfig(backend=backend)).eval()
        x = torch.ones(2, 4)
        x[1, 2] = value
        with pytest.raises(ValueError) as error:
            layer(x)
        messages.append(str(error.value))
    assert messages[0] == messages[1] and "NaN or Inf" in messages[0]


# ----------------------------------------------------------------------------------------
# 3. warnings only when true; clear errors for devices and wrong types
# ----------------------------------------------------------------------------------------

def test_prune_hooks_are_folded_without_a_warning(caplog):
    model = small_cnn()
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    with caplog.at_level(logging.WARNING, logger="unitprune.convert"):
        converted = unitprune.convert(model)
    assert not [r for r in caplog.records if "hooks" in r.getMessage()]
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(converted(x), model(x))
    assert int((converted[0].weight == 0).sum()) == int((model[0].weight == 0).sum()) == round(0.5 * 27)


def test_other_hooks_are_named_in_the_warning(caplog):
    model = small_cnn()

    def record_activation(module, args, output):
        return None

    model[3].register_forward_hook(record_activation)
    with caplog.at_level(logging.WARNING, logger="unitprune.convert"):
        unitprune.convert(model)
    messages = [r.getMessage() for r in caplog.records if "hooks" in r.getMessage()]
    assert len(messages) == 1 and "'3'" in messages[0] and "record_activation" in messages[0]


def test_meta_device_model_and_inputs_get_errors_naming_the_layer():
    with pytest.raises(ValueError, match="layer '0': weight is on the meta device"):
        unitprune.convert(small_cnn().to("meta"))
    converted = unitprune.convert(small_cnn())
    with pytest.raises(ValueError, match="layer '0': the input is on the meta device"):
        converted(torch.randn(2, 1, 8, 8, device="meta"))


@pytest.mark.parametrize("call, error, message", [
    (lambda m: unitprune.set_thresholds(m, "0.1"), TypeError, "layer '0'.*got str '0.1'"),
    (lambda m: unitprune.set_thresholds(m, {"3": [None]}), TypeError, "layer '3'"),
    (lambda m: unitprune.set_thresholds(m, torch.tensor(True)), TypeError, "real tensor"),
    (lambda m: unitprune.convert(small_cnn(), "bitshift"), TypeError, "config must be a unitprune.UnITConfig"),
    (lambda m: unitprune.calibrate(m, torch.randn(4, 1, 8, 8), per_layer=[("0", 10)]), TypeError, "per_layer"),
    (lambda m: unitprune.calibrate(m, {"x": torch.randn(4, 1, 8, 8)}), TypeError, "calibration data"),
    (lambda m: unitprune.calibrate(m, torch.randn(4, 1, 8, 8), percentile="20"), ValueError, r"\[0, 100\]"),
    (lambda m: unitprune.mac_report("model", torch.randn(2, 1, 8, 8)), TypeError, "mac_report expects an nn.Module"),
    (lambda m: unitprune.set_thresholds(None, 0.1), TypeError, "expects an nn.Module"),
    (lambda m: UnITConfig(group_size=True), ValueError, "group_size"),
])
def test_wrong_types_get_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(unitprune.convert(small_cnn()))


def test_set_thresholds_still_takes_numbers_lists_tensors_and_numpy():
    import numpy as np

    model = unitprune.convert(small_cnn(), UnITConfig(group_size=2))
    unitprune.set_thresholds(model, {"0": np.array([0.5, 0.25]), "3": [1, 2]})
    unitprune.set_thresholds(model, {"0": torch.tensor(0.125)})
    assert model[0].threshold.tolist() == [0.125, 0.125] and model[3].threshold.tolist() == [1.0, 2.0]


# ----------------------------------------------------------------------------------------
# 5. the calibrated BinTree survives state_dict; settings are checked on load
# ----------------------------------------------------------------------------------------

def test_bintree_round_trips_through_state_dict():
    config = UnITConfig(approx="bintree")
    model = unitprune.convert(small_cnn(), config)
    assert model[0].bintree is None  # declared on the layer, None until calibrated
    unitprune.calibrate(model, torch.randn(16, 1, 8, 8))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = unitprune.convert(small_cnn(), config)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    for name in ("0", "3"):
        assert fresh.get_submodule(name).bintree == model.get_submodule(name).bintree is not None
        assert torch.equal(fresh.get_submodule(name).threshold, model.get_submodule(name).threshold)


def test_state_dict_of_another_approximation_is_refused():
    model = unitprune.convert(small_cnn(), UnITConfig(approx="bitshift"))
    state = model.state_dict()
    other = unitprune.convert(small_cnn(), UnITConfig(approx="exact"))
    with pytest.raises(ValueError, match=r"layer '0'.*different settings \{'approx': \('bitshift', 'exact'\)\}"):
        other.load_state_dict(state)
    # runtime settings and the default percentile do not matter
    unitprune.convert(small_cnn(), UnITConfig(approx="bitshift", percentile=50, backend="torch")).load_state_dict(state)


# ----------------------------------------------------------------------------------------
# 6. deployment paths
# ----------------------------------------------------------------------------------------

def test_strip_returns_the_plain_torch_model_with_the_same_parameters():
    model = small_cnn()
    converted = unitprune.convert(model, UnITConfig(approx="bitmask"))
    unitprune.calibrate(converted, torch.randn(8, 1, 8, 8), percentile=60)
    plain = unitprune.strip(converted)
    assert [type(m) for m in plain] == [type(m) for m in model]
    assert isinstance(converted[0], UnITConv2d) and isinstance(converted[3], UnITLinear)  # not modified
    assert plain.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(plain.state_dict()[key], value)
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(plain(x), model(x), rtol=0, atol=0)
    in_place = unitprune.strip(converted, inplace=True)
    assert in_place is converted and in_place[0].weight is converted[0].weight
    assert type(unitprune.strip(unitprune.convert(nn.Linear(3, 2)))) is nn.Linear


def test_stripped_model_exports():
    plain = unitprune.strip(unitprune.convert(small_cnn()))
    program = torch.export.export(plain, (torch.randn(2, 1, 8, 8),))
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(program.module()(x), plain(x))


@pytest.mark.parametrize("capture", [
    lambda m, x: torch.jit.script(m),
    lambda m, x: torch.jit.trace(m, x),
    lambda m, x: torch.export.export(m, (x,)),
    lambda m, x: torch.onnx.export(m, (x,), io.BytesIO(), dynamo=False),
], ids=["jit.script", "jit.trace", "export", "onnx"])
def test_capturing_a_unit_model_fails_with_one_clear_message(capture):
    converted = unitprune.convert(small_cnn())
    x = torch.randn(2, 1, 8, 8)
    converted(x)
    with pytest.raises(RuntimeError, match=r"UnIT layer '0' cannot be captured.*unitprune\.strip\(model\)"):
        capture(converted, x)


def test_torch_compile_runs_unit_layers_eagerly_with_the_same_results():
    converted = unitprune.convert(small_cnn())
    unitprune.calibrate(converted, torch.randn(8, 1, 8, 8), percentile=50)
    x = torch.randn(4, 1, 8, 8)
    unitprune.reset_mac_counts(converted)
    expected = converted(x)
    eager_counts = converted[0].mac_counts
    unitprune.reset_mac_counts(converted)
    compiled = torch.compile(converted, backend="eager")
    torch.testing.assert_close(compiled(x), expected, rtol=0, atol=0)
    assert converted[0].mac_counts == eager_counts


# ----------------------------------------------------------------------------------------
# 8 (issue 8). result-changing settings apart from runtime settings
# ----------------------------------------------------------------------------------------

def test_config_keeps_result_settings_apart_from_runtime_settings():
    config = UnITConfig(approx="bitshift", group_size=2, backend="torch", check_finite=False)
    assert config.runtime == RuntimeConfig(backend="torch", check_finite=False)
    assert config.backend == "torch" and config.chunk_elements == RuntimeConfig().chunk_elements
    assert config.result_settings() == {"approx": "bitshift", "percentile": 20.0, "group_size": 2, "shift_start": None}
    other = config.with_runtime(backend="auto", chunk_elements=64)
    assert other.result_settings() == config.result_settings() and other.runtime.chunk_elements == 64
    assert UnITConfig(runtime=RuntimeConfig(backend="c")).backend == "c"
    with pytest.raises(ValueError, match="backend"):
        UnITConfig(backend="gpu")
    with pytest.raises(TypeError, match="RuntimeConfig"):
        UnITConfig(runtime={"backend": "c"})


# ----------------------------------------------------------------------------------------
# 9. module layout
# ----------------------------------------------------------------------------------------

def test_module_layout():
    from unitprune import calibrate as calibrate_module
    from unitprune.baselines import fatrelu
    from unitprune.experiments import run_report, sweep_config
    from unitprune.model_pass import execution_order, iterate_inputs

    assert fatrelu.iterate_inputs is iterate_inputs and fatrelu.execution_order is execution_order
    assert not hasattr(calibrate_module, "iterate_inputs") or calibrate_module.iterate_inputs is iterate_inputs
    assert sweep_config.SweepConfig and run_report.render_markdown
    assert "bintree" in unitprune.layers.UnITLayerMixin.__annotations__


# ----------------------------------------------------------------------------------------
# 4. the command line: messages, and nothing of the user's overwritten
# ----------------------------------------------------------------------------------------

def cli(argv, capsys):
    from unitprune.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def digits_weights(tmp_path):
    from unitprune.models import build_model

    path = tmp_path / "weights.pt"
    torch.save(build_model("digits", seed=0).state_dict(), path)
    return path


def test_cli_says_when_no_model_is_given(capsys, digits_weights):
    code, _, err = cli(["sweep", "--data", "digits"], capsys)
    assert code == 2 and "no model given" in err and "not both" not in err
    code, _, err = cli(["sweep", "--data", "digits", "--model", "digits", "--weights", str(digits_weights),
                        "--model-file", str(digits_weights)], capsys)
    assert code == 2 and "not both" in err


def test_cli_never_overwrites_a_run_folder_without_overwrite(tmp_path, capsys, digits_weights):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text("my earlier results")
    argv = ["sweep", "--model", "digits", "--weights", str(digits_weights), "--data", "digits", "--run-dir",
            str(run_dir), "--methods", "unpruned", "--no-progress"]
    code, _, err = cli(argv, capsys)
    assert code == 2 and "not empty" in err and "--overwrite" in err
    assert (run_dir / "results.json").read_text() == "my earlier results"
    code, _, err = cli(argv + ["--overwrite"], capsys)
    assert code == 0, err
    assert json.loads((run_dir / "results.json").read_text())["methods"]["unpruned"]


def test_cli_demo_train_and_calibrate_refuse_to_overwrite(tmp_path, capsys, digits_weights):
    demo_dir = tmp_path / "demo"
    demo_dir.mkdir()
    (demo_dir / "report.md").write_text("mine")
    code, _, err = cli(["demo", "--run-dir", str(demo_dir)], capsys)
    assert code == 2 and "is not empty (report.md)" in err and "--overwrite" in err
    (tmp_path / "train" / "notes.txt").parent.mkdir()
    (tmp_path / "train" / "notes.txt").write_text("mine")
    code, _, err = cli(["train", "--data", "digits", "--run-dir", str(tmp_path / "train")], capsys)
    assert code == 2 and "--overwrite" in err
    output = tmp_path / "thresholds.json"
    output.write_text("mine")
    code, _, err = cli(["calibrate", "--model", "digits", "--weights", str(digits_weights), "--data", "digits",
                        "--output", str(output)], capsys)
    assert code == 2 and "--overwrite" in err and output.read_text() == "mine"
    assert (demo_dir / "report.md").read_text() == "mine" and (tmp_path / "train" / "notes.txt").read_text() == "mine"
