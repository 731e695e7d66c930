"""The networks shipped in the package (repro/pretrained.py), torch.hub's entry point, and preset names where the
commands take a model file."""
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import repro
from repro.cli import main
from repro.pretrained import PRETRAINED, WEIGHTS_DIR, manifest, weights_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", PRETRAINED)
def test_each_shipped_network_is_its_result_folders_median_seed(name):
    entry = manifest()[name]
    assert hashlib.sha256(weights_file(name).read_bytes()).hexdigest() == entry["sha256"]
    source = ROOT / entry["source"]
    shipped, committed = torch.load(weights_file(name))["model"], torch.load(source)["model"]
    assert all(torch.equal(shipped[k], committed[k]) for k in committed)
    errors = sorted(entry["their_test_errors_pct"])
    assert entry["final_test_error_pct"] == pytest.approx(errors[(len(errors) - 1) // 2])


@pytest.mark.parametrize("name", PRETRAINED)
def test_pretrained_gives_a_ready_network_with_its_config(name):
    model = repro.pretrained(name)
    assert not model.training and model.run_config.train.seed == manifest()[name]["seed"]
    x = torch.zeros(2, 1, model.input_size, model.input_size)
    assert model(x).shape == (2, 10)


def test_an_unknown_name_is_one_line():
    with pytest.raises(repro.ConfigError, match="unknown pretrained network 'lenet7'; valid: paper"):
        repro.pretrained("lenet7")


def test_torch_hub_loads_it_from_a_local_clone():
    model = torch.hub.load(str(ROOT), "lenet5", source="local", preset="modern")
    assert not model.training and model.run_config.model.head == "linear"
    fresh = torch.hub.load(str(ROOT), "lenet5", source="local", preset="paper", pretrained=False)
    assert fresh.run_config.model.head == "rbf"
    assert not torch.equal(fresh.c1[0].weight, repro.pretrained("paper").c1[0].weight)


def test_a_preset_name_stands_for_a_model_file(real_data_root, capsys):
    assert main(["evaluate", "paper", "--data-root", str(real_data_root), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["error_pct"] == pytest.approx(manifest()["paper"]["final_test_error_pct"])


@pytest.mark.slow
def test_a_wheel_carries_the_weights_and_its_install_loads_them_offline(tmp_path):
    """A non-editable install (`pip install .`) includes them: the wheel pip builds holds every shipped file, and
    the package installed from it gives every pretrained network without this clone or the network."""
    pytest.importorskip("setuptools")  # the build backend, used from this environment (no download)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"repro/weights/{p.name}" for p in WEIGHTS_DIR.iterdir()} <= set(names)
    # installed from the wheel alone (no index, no network) and used from elsewhere, away from this clone: the
    # installed package is the one imported, and the networks load from inside it
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, cwd=tmp_path)
    dependencies = Path(torch.__file__).resolve().parents[1]  # torch & co, without this clone's editable install
    code = ("import repro, torch; from pathlib import Path; assert Path(repro.__file__).is_relative_to(Path(r'%s'))\n"
            "from repro.pretrained import PRETRAINED\n"
            "for name in PRETRAINED:\n"
            "    m = repro.pretrained(name); x = torch.zeros(1, 1, m.input_size, m.input_size); assert m(x).shape == (1, 10)\n"
            "print('ok')" % site)
    run = subprocess.run([sys.base_prefix + "/bin/python3", "-I", "-c", f"import sys; sys.path[:0] = "
                          f"[{str(site)!r}, {str(dependencies)!r}]\n" + code], capture_output=True, text=True,
                         cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_ladder_best_is_the_ladders_best_rung_or_shipping_stops(tmp_path):
    from helpers.grid_data import write_synthetic_grid

    from experiments.ship_pretrained import ladder_best_rung
    from repro.errors import RunError

    assert ladder_best_rung(ROOT / "results")["variant"] == manifest()["ladder_best"]["rung"]
    # a ladder whose best rung is another: PRETRAINED would ship the wrong network, so shipping refuses
    write_synthetic_grid(tmp_path / "grids" / "ladder", {"paper": [1.0] * 5, "+head=linear": [1.1] * 5,
                                                         "+input=28": [0.5, 0.6, 0.5, 0.6, 0.5]})
    with pytest.raises(RunError, match=r"the ladder's best rung is now \+input=28"):
        ladder_best_rung(tmp_path)


def test_torch_hub_builds_an_untrained_ladder_best_from_its_config():
    fresh = torch.hub.load(str(ROOT), "lenet5", source="local", preset="ladder_best", pretrained=False)
    shipped = repro.pretrained("ladder_best")
    assert fresh.run_config == shipped.run_config and fresh.run_config.model.activation == "relu"
    assert not torch.equal(fresh.c1[0].weight, shipped.c1[0].weight)
