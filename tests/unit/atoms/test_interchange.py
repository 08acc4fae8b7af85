"""deepmd-kit interchange: import gives deepmd-kit's numbers, export -> import is bit-identical,
the written .dp has the structure deepmd-kit writes, and what cannot cross is refused by name.

The fixture (tests/data/deepmd_se_e2_a, see its README) was made once with deepmd-kit. Tests
marked slow run deepmd-kit itself: set DEEPMD_PYTHON to a python that imports deepmd.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conlearn.atoms.deeppot.interchange import (
    InterchangeError, export_model, from_dp_dict, import_model, read_any, read_dp, to_dp_dict,
    write_dp)
from conlearn.atoms.deeppot.model import DeepPot, DeepPotSpec, load_model

FIX = Path(__file__).resolve().parents[2] / "data" / "deepmd_se_e2_a"
META = {"software", "version", "time", "backend", "pt_version", "model_def_script", "@variables"}


def predict(model: DeepPot, coord, box, atype) -> dict:
    """Energy [F] eV, forces [F, n, 3] eV/Å, virial [F, 3, 3] eV of frames ``coord [F, n, 3]``."""
    g = model.graph([(c, b, [True] * 3, atype) for c, b in zip(coord, box)])
    out = model.evaluate(g)
    return {"energy": out["energy"].detach().numpy(),
            "force": out["forces"].detach().numpy().reshape(len(coord), -1, 3),
            "virial": out["virial"].detach().numpy()}


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(FIX / "reference.npz"))


def random_model(type_one_side=False, precision="float64", **kw) -> DeepPot:
    spec = DeepPotSpec(type_map=["O", "H"], sel=[18, 36], rcut=4.0, rcut_smth=0.5,
                       neuron=kw.pop("neuron", [4, 8]), axis_neuron=2, type_one_side=type_one_side,
                       fitting_neuron=kw.pop("fitting_neuron", [12, 12]), precision=precision,
                       seed=7, **kw)
    m = DeepPot(spec)
    with torch.no_grad():
        m.descriptor.avg[:, 0] = torch.tensor([0.09, 0.08])
        m.descriptor.std[:, 0] = torch.tensor([0.23, 0.19])
        m.descriptor.std[:, 1:] = torch.tensor([[0.14], [0.12]])
        m.bias_atom_e.copy_(torch.tensor([-93.5, -187.1]))
    return m.eval()


# --------------------------------------------------------------------------- import
@pytest.mark.parametrize("name", ["model.dp", "checkpoint.pt"])
def test_import_gives_deepmd_kit_predictions(name, ref, tmp_path):
    model = import_model(FIX / name, tmp_path / "model.pt")
    p = predict(load_model(tmp_path / "model.pt"), ref["coord"], ref["box"], ref["atype"])
    n = ref["coord"].shape[1]
    assert np.abs(p["energy"] - ref["energy"]).max() / n < 1e-10  # eV/atom
    assert np.abs(p["force"] - ref["force"]).max() < 1e-10  # eV/Å
    assert np.abs(p["virial"] - ref["virial"]).max() < 1e-9  # eV
    assert model.spec.type_map == ["O", "H"] and model.spec.sel == [18, 36]
    assert model.spec.embed_resnet_dt and model.spec.fitting_resnet_dt and not model.spec.type_one_side


def test_dp_and_checkpoint_give_the_same_weights():
    a, b = (from_dp_dict(read_any(FIX / n)) for n in ("model.dp", "checkpoint.pt"))
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k


# --------------------------------------------------------------------------- export
def skeleton(obj, path=""):
    """``{json path: value}``, arrays as (shape, dtype) — what deepmd-kit's reader relies on."""
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in skeleton(val, f"{path}/{key}").items()}
    if isinstance(obj, list) and obj and isinstance(obj[0], (dict, np.ndarray)):
        return {k: v for i, val in enumerate(obj) for k, v in skeleton(val, f"{path}[{i}]").items()}
    if isinstance(obj, np.ndarray):
        return {path: ("array", obj.shape, obj.dtype.str)}
    return {path: obj}


def test_export_has_deepmd_kit_structure(tmp_path):
    """Exporting the imported fixture writes what deepmd-kit wrote: the same keys, the same
    values (precision 'default' is spelled out, out_std is not kept), the same arrays."""
    out = export_model(_saved(from_dp_dict(read_dp(FIX / "model.dp")), tmp_path), tmp_path / "x.dp")
    ours, theirs = read_dp(out), read_dp(FIX / "model.dp")
    with h5py.File(out) as f:
        assert set(json.loads(f.attrs["json"])) >= {"model", "model_def_script", "software"}
        assert all(k.startswith("variable_") for k in f)
    a, b = skeleton(ours["model"]), skeleton(theirs["model"])
    assert set(a) == set(b), sorted(set(a) ^ set(b))
    differ = {k for k in a if a[k] != b[k]}
    assert differ == {"/fitting/precision", "/fitting/nets/networks[0]/precision",
                      "/fitting/nets/networks[1]/precision"}, differ
    assert {a[k] for k in differ} == {"float64"} and {b[k] for k in differ} == {"default"}
    flat_a, flat_b = _arrays(ours["model"]), _arrays(theirs["model"])
    for k in flat_b:
        if k != "/@variables/out_std":
            assert np.array_equal(flat_a[k], flat_b[k]), k


def _arrays(obj, path="") -> dict:
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in _arrays(val, f"{path}/{key}").items()}
    if isinstance(obj, list):
        return {k: v for i, val in enumerate(obj) for k, v in _arrays(val, f"{path}[{i}]").items()}
    return {path: obj} if isinstance(obj, np.ndarray) else {}


def _saved(model: DeepPot, tmp_path: Path) -> Path:
    model.save(tmp_path / "src.pt")
    return tmp_path / "src.pt"


@pytest.mark.parametrize("type_one_side,precision", [(False, "float64"), (True, "float64"),
                                                     (False, "float32")])
def test_export_import_round_trip_is_bit_identical(type_one_side, precision, ref, tmp_path):
    model = random_model(type_one_side, precision)
    export_model(_saved(model, tmp_path), tmp_path / "m.dp")
    back = import_model(tmp_path / "m.dp", tmp_path / "back.pt")
    assert back.spec == model.spec
    for k, v in model.state_dict().items():  # unused fitting time steps without resnet_dt aside
        assert torch.equal(v, back.state_dict()[k]) or ".dts." in k, k
    p, q = (predict(m, ref["coord"], ref["box"], ref["atype"]) for m in (model, load_model(tmp_path / "back.pt")))
    for key in p:
        assert np.array_equal(p[key], q[key]), key


def test_round_trip_of_an_imported_model_keeps_its_file(tmp_path):
    model = from_dp_dict(read_dp(FIX / "model.dp"))
    data = to_dp_dict(model)
    write_dp(tmp_path / "a.dp", data)
    again = from_dp_dict(read_dp(tmp_path / "a.dp"))
    for (k, v), w in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(v, w), k


# --------------------------------------------------------------------------- refusals
def test_export_refuses_what_deepmd_kit_cannot_compute(tmp_path):
    m = random_model(embed_resnet_dt=True)  # conlearn steps the plain 1 -> 4 layer too
    with pytest.raises(InterchangeError, match=r"embedding net \(O, O\) layer 0 .*resnet_dt"):
        to_dp_dict(m)
    with torch.no_grad():
        for net in m.descriptor.nets:
            net.dts[0].fill_(1.0)
    to_dp_dict(m)  # a step of exactly 1 is no step: exportable
    with pytest.raises(InterchangeError, match=r"fitting net \(O\) hidden layer 1 doubles its width"):
        to_dp_dict(random_model(fitting_neuron=[12, 24]))
    with pytest.raises(InterchangeError, match="must end in .dp"):
        export_model(_saved(random_model(), tmp_path), tmp_path / "x.pth")


def _fixture_with(edit) -> dict:
    data = copy.deepcopy(read_dp(FIX / "model.dp"))
    edit(data["model"])
    return data


@pytest.mark.parametrize("edit,match", [
    (lambda m: m["descriptor"].update(type="dpa1"), "descriptor 'dpa1' is not supported"),
    (lambda m: m["descriptor"].update(type="hybrid", list=[{"type": "se_e2_a"}, {"type": "se_atten"}]),
     "descriptor 'hybrid' of se_e2_a, se_atten is not supported"),
    (lambda m: m.update(type="zbl"), "model type 'zbl' is not supported"),
    (lambda m: m["fitting"].update(type="dipole"), "fitting type 'dipole'"),
    (lambda m: m["descriptor"].update(exclude_types=[[0, 1]]), r"descriptor.exclude_types = \[\[0, 1\]\]"),
    (lambda m: m["descriptor"].update(env_protection=0.1), "descriptor.env_protection"),
    (lambda m: m["descriptor"].update(sel="auto"), "descriptor.sel = 'auto'"),
    (lambda m: m["fitting"].update(numb_fparam=2), "fitting.numb_fparam = 2"),
    (lambda m: m.update(atom_exclude_types=[1]), "model.atom_exclude_types"),
    (lambda m: m["descriptor"].update(activation_function="gelu"), "descriptor.activation_function"),
    (lambda m: m["descriptor"].update(precision="float32"), "precision descriptor='float32'"),
    (lambda m: m["fitting"]["nets"]["networks"][0]["layers"][0]["@variables"].update(w=np.zeros((16, 32))),
     r"fitting net \(O\) hidden layer 0 w: shape \(32, 16\), expected \(16, 16\)"),
    (lambda m: m["descriptor"]["@variables"]["davg"].__setitem__((0, 3, 0), 1.0),
     "davg differs between neighbour slots"),
])
def test_import_refuses_by_name(edit, match):
    with pytest.raises(InterchangeError, match=match):
        from_dp_dict(_fixture_with(edit))


def test_bad_files_are_named(tmp_path):
    bad = tmp_path / "cut.dp"
    bad.write_bytes((FIX / "model.dp").read_bytes()[:5000])
    with pytest.raises(InterchangeError, match="cut.dp: not a readable deepmd-kit model file"):
        import_model(bad, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()
    junk = tmp_path / "junk.pt"
    torch.save({"model": {"w": torch.zeros(2)}}, junk)
    with pytest.raises(InterchangeError, match="junk.pt: no model_params"):
        import_model(junk, tmp_path / "m.pt")
    multi = tmp_path / "multi.pt"
    torch.save({"model": {"_extra_state": {"model_params": {"model_dict": {"a": {}, "b": {}}}}}}, multi)
    with pytest.raises(InterchangeError, match=r"multi-task checkpoint \(heads \['a', 'b'\]\)"):
        import_model(multi, tmp_path / "m.pt")
    with pytest.raises(InterchangeError, match="unknown deepmd-kit model suffix '.pb'"):
        import_model(_touch(tmp_path / "frozen.pb"), tmp_path / "m.pt")


def _touch(p: Path) -> Path:
    p.write_bytes(b"x")
    return p


# --------------------------------------------------------------------------- a run starts from it
def test_training_starts_from_an_imported_model(ref, tmp_path, water_dir):
    """``conlearn train --init-model imported.pt``: the run keeps the imported statistics and
    starts from the imported predictions."""
    from conlearn.atoms.deeppot.config import TrainConfig
    from conlearn.atoms.deeppot.train import Trainer

    imported = import_model(FIX / "model.dp", tmp_path / "imported.pt")
    system = tmp_path / "sys"
    (system / "set.000").mkdir(parents=True)
    src = water_dir / "data_3"
    for name in ("type.raw", "type_map.raw"):
        (system / name).write_text((src / name).read_text())
    for name in ("coord", "box", "energy", "force"):
        np.save(system / "set.000" / f"{name}.npy", np.load(src / "set.000" / f"{name}.npy")[:2])
    cfg = json.loads((FIX / "input.json").read_text())
    cfg["training"].update(training_data={"systems": [str(system)], "batch_size": 1},
                           numb_steps=2, disp_freq=1, save_freq=2)
    cfg["learning_rate"].update(start_lr=1e-6, stop_lr=1e-7)
    out = Trainer(TrainConfig.model_validate(cfg), tmp_path / "out",
                  init_model=tmp_path / "imported.pt", log=lambda m: None).run()
    trained = load_model(out)
    assert torch.equal(trained.descriptor.avg, imported.descriptor.avg)
    e0 = predict(imported, ref["coord"], ref["box"], ref["atype"])["energy"]
    e1 = predict(trained, ref["coord"], ref["box"], ref["atype"])["energy"]
    assert 0 < np.abs(e1 - e0).max() / 192 < 1e-2  # trained a little, from the imported weights


# --------------------------------------------------------------------------- deepmd-kit itself
def deepmd_python() -> str:
    py = os.environ.get("DEEPMD_PYTHON", "")
    if not py:
        pytest.skip("set DEEPMD_PYTHON to a python with deepmd-kit (e.g. the venv of "
                    "shared/bench/install_deepmd_kit.sh) to run deepmd-kit itself")
    if subprocess.run([py, "-c", "import deepmd.pt"], capture_output=True).returncode:
        pytest.skip(f"DEEPMD_PYTHON={py} cannot import deepmd.pt")
    return py


def run_deepmd(py: str, *args: str, cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("PYTHONPATH", None)
    r = subprocess.run([py, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]


EVAL = """import sys, numpy as np
from deepmd.infer import DeepPot
d = np.load(sys.argv[2]); e, f, v = DeepPot(sys.argv[1]).eval(d["coord"], d["box"], d["atype"])[:3]
np.savez(sys.argv[3], energy=e.reshape(-1), force=f.reshape(len(d["coord"]), -1, 3), virial=v.reshape(-1, 3, 3))
"""


@pytest.mark.slow
def test_deepmd_kit_predicts_an_exported_model_like_conlearn(ref, tmp_path):
    py = deepmd_python()
    model = random_model(type_one_side=False)
    export_model(_saved(model, tmp_path), tmp_path / "m.dp")
    run_deepmd(py, "-m", "deepmd", "convert-backend", "m.dp", "m.pth", cwd=tmp_path)
    np.savez(tmp_path / "frames.npz", coord=ref["coord"].reshape(2, -1), box=ref["box"].reshape(2, 9),
             atype=ref["atype"])
    (tmp_path / "eval.py").write_text(EVAL)
    run_deepmd(py, "eval.py", "m.pth", "frames.npz", "dp_out.npz", cwd=tmp_path)
    theirs, ours = np.load(tmp_path / "dp_out.npz"), predict(model, ref["coord"], ref["box"], ref["atype"])
    assert np.abs(theirs["energy"] - ours["energy"]).max() / 192 <= 1e-8
    assert np.abs(theirs["force"] - ours["force"]).max() <= 1e-8
    assert np.abs(theirs["virial"] - ours["virial"]).max() <= 1e-7


@pytest.mark.slow
def test_deepmd_kit_frozen_model_imports(ref, tmp_path):
    py = deepmd_python()
    run_deepmd(py, "-m", "deepmd", "--pt", "freeze", "-c", str(FIX / "checkpoint.pt"), "-o", "f.pth",
               cwd=tmp_path)
    run_deepmd(py, "-m", "deepmd", "convert-backend", "f.pth", "f.yaml", cwd=tmp_path)
    for name in ("f.pth", "f.yaml"):  # TorchScript, and deepmd-kit's YAML form of the .dp dict
        p = predict(import_model(tmp_path / name, tmp_path / "m.pt"), ref["coord"], ref["box"], ref["atype"])
        assert np.abs(p["energy"] - ref["energy"]).max() / 192 < 1e-10, name
        assert np.abs(p["force"] - ref["force"]).max() < 1e-10, name
