"""The unitprune command line: help, a tiny end-to-end sweep, config files and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unitprune.cli import main
from unitprune.data import load_dataset
from unitprune.models import build_model
from unitprune.training import TrainConfig, train

COMMANDS = ["demo", "train", "calibrate", "sweep", "report"]
FAST_SWEEP = ["--unit-percentiles", "20", "60", "--fatrelu-percentiles", "50", "--ttp-sparsities", "0.5",
              "--ttp-epochs", "1", "--autotune-budgets", "1", "--no-progress"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained digits model saved three ways: state_dict, pickled module, and its data as .npz."""
    folder = tmp_path_factory.mktemp("cli")
    splits = load_dataset("digits", seed=0)
    model = build_model("digits", seed=0)
    train(model, splits, TrainConfig(epochs=8, lr=5e-3, patience=None, progress=False, num_threads=1))
    torch.save(model.state_dict(), folder / "weights.pt")
    torch.save(model, folder / "whole_model.pt")
    arrays = {f"{k}_{split}": getattr(splits, split).tensors[i].numpy()
              for split in ("val", "test") for i, k in enumerate(("x", "y"))}
    np.savez(folder / "data.npz", **arrays)
    return folder


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command(command, capsys):
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0
    assert f"usage: unitprune {command}" in out
    assert "--config" in out


def test_top_level_help_lists_commands(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for command in COMMANDS:
        assert command in out


def test_sweep_end_to_end_and_report(trained, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, out, err = run(["sweep", "--model", "digits", "--weights", str(trained / "weights.pt"), "--data", "digits",
                          "--run-dir", str(run_dir), "--methods", "unpruned", "fatrelu", "unit-exact",
                          "unit-autotuned", *FAST_SWEEP], capsys)
    assert code == 0, err
    results = json.loads((run_dir / "results.json").read_text())
    assert list(results["methods"]) == ["unpruned", "fatrelu", "unit-exact", "unit-autotuned"]
    assert [p["knob"] for p in results["methods"]["unit-exact"]] == [20.0, 60.0]
    assert "unit-exact" in out and "report.md" in out  # the summary table and where the report is

    (run_dir / "report.md").unlink()
    code, out, err = run(["report", str(run_dir)], capsys)
    assert code == 0, err
    assert (run_dir / "report.md").is_file() and "unit-autotuned" in out


def test_sweep_resume_skips_finished_tasks_and_refuses_other_settings(trained, tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["sweep", "--model", "digits", "--weights", str(trained / "weights.pt"), "--data", "digits",
            "--run-dir", str(run_dir), "--methods", "unpruned", "unit-exact", "--workers", "1", *FAST_SWEEP]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert sorted(p.name for p in (run_dir / "tasks").iterdir()) == [
        "manifest.json", "unit-exact=20.pkl", "unit-exact=60.pkl", "unpruned.pkl"]
    first = json.loads((run_dir / "results.json").read_text())
    code, _, err = run(argv, capsys)
    assert code == 2 and "--overwrite" in err  # a finished run folder is still never overwritten silently
    (run_dir / "tasks" / "unit-exact=60.pkl").unlink()  # as if the run had died before that task landed
    code, _, err = run([*argv, "--resume"], capsys)
    assert code == 0, err
    again = json.loads((run_dir / "results.json").read_text())
    assert again["methods"] == first["methods"] and again["executor"]["resume"] is True
    code, _, err = run([*argv[:-len(FAST_SWEEP)], *FAST_SWEEP[:1], "30", "60", *FAST_SWEEP[3:], "--resume"], capsys)
    assert code == 2 and "other settings" in err and "unit_percentiles" in err
    code, _, err = run([*argv, "--ray-address", "auto"], capsys)
    assert code == 2 and "--executor ray" in err


def test_sweep_on_a_data_file_and_a_pickled_model_needs_trust(trained, tmp_path, capsys):
    argv = ["sweep", "--model-file", str(trained / "whole_model.pt"), "--data", str(trained / "data.npz"),
            "--run-dir", str(tmp_path / "run"), *FAST_SWEEP]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert "--trust-model-file" in err and "Traceback" not in err
    code, out, err = run(argv + ["--trust-model-file"], capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "ttp" not in results["methods"]  # the data file has no training split: TTP is skipped
    assert "unit-bitshift" in results["methods"]
    # asking for TTP explicitly without training data is an error
    code, _, err = run(argv + ["--trust-model-file", "--methods", "ttp"], capsys)
    assert code == 2 and "x_train" in err


def test_fold_input_option(trained, tmp_path, capsys):
    argv = ["sweep", "--model", "digits", "--weights", str(trained / "weights.pt"), "--methods", "unpruned",
            "--no-progress", "--fold-input"]
    code, _, err = run(argv + ["--data", "digits", "--run-dir", str(tmp_path / "folded")], capsys)
    assert code == 0, err
    folded = json.loads((tmp_path / "folded" / "results.json").read_text())
    assert folded["input_normalization_folded"] is True
    code, _, err = run(argv[:-1] + ["--data", "digits", "--run-dir", str(tmp_path / "plain")], capsys)
    plain = json.loads((tmp_path / "plain" / "results.json").read_text())
    assert folded["baseline_accuracy"] == plain["baseline_accuracy"]  # folding is exact
    assert folded["summary"]["unpruned"]["max_skipped_fraction_at_1pt_drop"] > \
        plain["summary"]["unpruned"]["max_skipped_fraction_at_1pt_drop"]  # black pixels are zeros now
    code, _, err = run(argv + ["--data", str(trained / "data.npz")], capsys)  # a data file records no normalisation
    assert code == 2 and "normalisation" in err


def test_calibrate_command_writes_thresholds(trained, tmp_path, capsys):
    output = tmp_path / "thresholds.json"
    code, out, err = run(["calibrate", "--model", "digits", "--weights", str(trained / "weights.pt"), "--data",
                          "digits", "--percentile", "40", "--per-layer", "fc=10", "--approx", "bitshift",
                          "--output", str(output)], capsys)
    assert code == 0, err
    document = json.loads(output.read_text())
    assert set(document["thresholds"]) == {"conv1", "fc"}
    assert document["per_layer_percentiles"] == {"fc": 10.0}
    assert "test accuracy" in out


def test_config_file_values_and_cli_override(trained, tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text(f'''
model = "digits"
weights = "{trained / 'weights.pt'}"
data = "digits"
no_progress = true

[sweep]
methods = ["unpruned", "unit-exact"]
unit-percentiles = [30, 70]
run_dir = "{tmp_path / 'from_file'}"
''')
    code, _, err = run(["sweep", "--config", str(config)], capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "from_file" / "results.json").read_text())
    assert [p["knob"] for p in results["methods"]["unit-exact"]] == [30.0, 70.0]

    code, _, err = run(["sweep", "--config", str(config), "--unit-percentiles", "50", "--run-dir",
                        str(tmp_path / "override")], capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "override" / "results.json").read_text())
    assert [p["knob"] for p in results["methods"]["unit-exact"]] == [50.0]


@pytest.mark.parametrize("content, message", [
    ('bogus_key = 1\n', "unknown key 'bogus_key'"),
    ('unit_percentiles = 20\n', "must be a non-empty list"),
    ('methods = ["unit-magic"]\n', "is not one of"),
    ('budget = "lots"\n', "not a valid float"),
    ('this is not toml\n', "not valid TOML"),
])
def test_bad_config_files_are_one_line_errors(tmp_path, capsys, content, message):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    code, _, err = run(["sweep", "--config", str(config)], capsys)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["sweep", "--model", "digits", "--weights", "/no/such/weights.pt", "--data", "digits"], "file not found"),
    (["sweep", "--model", "digits", "--data", "digits"], "needs --weights"),
    (["sweep", "--model", "resnet", "--weights", "w.pt", "--data", "digits"], "unknown model"),
    (["sweep", "--data", "no_such_dataset", "--model", "digits", "--weights", "w.pt"], "neither a built-in dataset"),
    (["sweep", "--model", "digits"], "--data is required"),
    (["sweep", "--model", "digits", "--weights", "w.pt", "--data", "."], "is a folder"),
    (["sweep", "--methods", "unit-magic"], "invalid choice"),
    (["sweep", "--budget", "abc"], "invalid float value"),
    (["sweep", "--frobnicate"], "unrecognized arguments"),
    (["calibrate", "--config", "/no/such/config.toml"], "config file not found"),
    (["report", "/no/such/run"], "no results file"),
    (["train", "--data", "cifar10"], "cifar10"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_paths_and_options_are_one_line_errors(argv, message, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2
    assert message in err
    assert err.startswith("unitprune: error:") and err.count("\n") == 1 and "Traceback" not in err


def test_state_dict_passed_as_model_file_is_explained(trained, capsys):
    code, _, err = run(["sweep", "--model-file", str(trained / "weights.pt"), "--data", "digits"], capsys)
    assert code == 2 and "state_dict" in err and "--weights" in err


def test_model_that_does_not_fit_the_data(trained, capsys):
    code, _, err = run(["calibrate", "--model", "digits", "--weights", str(trained / "weights.pt"), "--data", "mnist"],
                       capsys)
    assert code == 2 and "fails on the data's inputs" in err
