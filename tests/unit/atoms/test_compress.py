"""Compressed DeepPot: tabulation error, equality with the exact model on water, the physics
kit, out-of-range fallback, save/load without code execution, the CLI."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from ase import Atoms

from conlearn.atoms.calculator import DeepPotCalculator
from conlearn.atoms.deeppot.compress import CompressedDeepPot, compress_model
from conlearn.atoms.deeppot.model import DeepPot, DeepPotSpec, load_model
from conlearn.atoms.deeppot.tabulate import Table, hermite5, net_derivatives
from conlearn.nn.mlp import EmbeddingNet
from conlearn.testing import physics
from conlearn.testing.structures import water_box

from .test_deeppot_model import batch_fn, small_model


@pytest.mark.parametrize("resnet_dt", [False, True])
def test_net_derivatives_match_autograd(resnet_dt):
    net = EmbeddingNet(1, [6, 12, 24], resnet_dt=resnet_dt, seed=5)
    x = torch.linspace(-1.0, 8.0, 23, dtype=torch.float64, requires_grad=True)
    y = net(x.unsqueeze(-1))
    d1 = torch.stack([torch.autograd.grad(y[:, m].sum(), x, create_graph=True)[0] for m in range(24)], -1)
    d2 = torch.stack([torch.autograd.grad(d1[:, m].sum(), x, retain_graph=True)[0] for m in range(24)], -1)
    v, v1, v2 = net_derivatives(net, x.detach())
    for got, want in ((v, y), (v1, d1), (v2, d2)):
        assert torch.allclose(got, want.detach(), rtol=0, atol=1e-13)


def test_hermite5_interpolates_value_and_two_derivatives():
    rng = torch.Generator().manual_seed(0)
    h = torch.tensor([0.3, 0.05], dtype=torch.float64)
    y0, d0, s0, y1, d1, s1 = (torch.randn(2, 3, generator=rng, dtype=torch.float64) for _ in range(6))
    c = hermite5(h, y0, d0, s0, y1, d1, s1)  # [2, 6, 3]
    q = torch.arange(6, dtype=torch.float64)
    t = h.view(2, 1)
    p = lambda k, n: (c * (q.view(1, 6, 1) if n else 1) * (q.view(1, 6, 1) - 1 if n == 2 else 1)  # noqa: E731
                      * (k.view(2, 1, 1) ** (q - n).clamp(min=0).view(1, 6, 1))).sum(1)
    z = torch.zeros_like(t)
    for got, want in ((p(z, 0), y0), (p(z, 1), d0), (p(z, 2), s0), (p(t, 0), y1), (p(t, 1), d1), (p(t, 2), s1)):
        assert torch.allclose(got, want, atol=1e-11)


def test_table_error_bounds_and_order():
    """Error of G and dG/dx falls as h^6 and h^5 on the fine grid; small on the coarse one."""
    net = EmbeddingNet(1, [10, 20, 40], seed=7)
    rng = torch.Generator().manual_seed(1)
    x = torch.rand(4000, generator=rng, dtype=torch.float64) * 5 - 1  # fine grid: [-1, 4]
    y, d1, _ = net_derivatives(net, x)
    errs = []
    for step in (0.2, 0.1, 0.05):
        g, dg = Table.build(net, -1.0, 4.0, 10.0, step).evaluate(x)
        errs.append(((g - y).abs().max().item(), (dg - d1).abs().max().item()))
    (e1, f1), (e2, f2), (e3, f3) = errs
    assert e3 < 1e-11 and f3 < 1e-9, errs
    assert 40 < e1 / e2 < 100 and 40 < e2 / e3 < 100, errs  # order 6: ratio 64
    assert 20 < f1 / f2 < 50 and 20 < f2 / f3 < 50, errs  # order 5: ratio 32
    tab = Table.build(net, -1.0, 4.0, 10.0, 0.01)
    xc = torch.rand(4000, generator=rng, dtype=torch.float64) * 6 + 4  # coarse grid, step 0.1
    yc, dc, _ = net_derivatives(net, xc)
    g, dg = tab.evaluate(xc)
    assert (g - yc).abs().max() < 1e-9 and (dg - dc).abs().max() < 1e-8
    # at the nodes: exact; just below a node (previous interval's polynomial) equal to just above
    node = tab.nodes[1:-1]
    gn, dn = tab.evaluate(node)
    yn, d1n, _ = net_derivatives(net, node)
    assert (gn - yn).abs().max() < 1e-13 and (dn - d1n).abs().max() < 1e-12
    below, dbelow = tab.evaluate(node - 1e-12)
    assert (below - gn).abs().max() < 1e-11 and (dbelow - dn).abs().max() < 1e-10


def water_model(system, precision: str = "float64") -> DeepPot:
    """The water example's architecture, smaller, with statistics of ``system``'s first frame."""
    spec = DeepPotSpec(type_map=["O", "H"], sel=[46, 92], rcut=6.0, rcut_smth=0.5, neuron=[10, 20, 40],
                       axis_neuron=8, fitting_neuron=[40, 40], precision=precision, seed=2)
    model = DeepPot(spec)
    g = model.graph([(system.coords[0], system.cells[0], system.pbc, system.types)])
    model.descriptor.set_stats(model.descriptor.stat_sums(g))
    return model.eval()


def test_compressed_equals_exact_on_water_data(water_small):
    from conlearn.atoms.dataset import load_systems
    from conlearn.atoms.deeppot.evaluate import predict_system

    system = load_systems(water_small / "data_3")[0]
    system = type(system)(**{**system.__dict__, "coords": system.coords[:3], "cells": system.cells[:3],
                             "energies": None, "forces": None, "virials": None})
    for precision, tol_f, tol_e in (("float64", 1e-9, 1e-11), ("float32", 2e-4, 2e-6)):
        exact = water_model(system, precision)
        comp = compress_model(exact, min_dist=0.8)
        a, b = predict_system([exact], system), predict_system([comp], system)
        df = np.abs(a["forces"] - b["forces"]).max()
        de = (np.abs(a["energy"] - b["energy"]) / system.n_atoms).max()
        print(precision, "max |dF|", df, "eV/Å; max |dE|", de, "eV/atom")
        assert df <= tol_f and de <= tol_e  # issue: 1e-3 eV/Å and 1e-5 eV/atom


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("type_one_side", [False, True])
def test_physics_kit_on_compressed(precision, type_one_side):
    model = compress_model(small_model(precision, type_one_side), step=0.02)
    calc = DeepPotCalculator(model)
    atoms = water_box(n_molecules=8, seed=1)
    results = physics.run_all(calc, atoms, precision=precision, n_atoms=4, predict_batch=batch_fn(calc),
                              batch_atoms=[atoms, water_box(n_molecules=8, seed=2), atoms[:9]])
    if precision == "float64" and not type_one_side:
        def dimer(r):
            return Atoms("OH", positions=[[0, 0, 0], [r, 0, 0]], pbc=False)

        results.append(physics.check_cutoff_smoothness(calc, dimer, r_cut=model.spec.rcut))
    print(physics.format_results(results))
    physics.assert_all_passed(results)


def test_out_of_range_warns_once_and_stays_exact():
    exact = small_model()
    comp = compress_model(exact, step=0.05, min_dist=2.0, extrapolate=1.0)  # O-H at ~1 Å: beyond
    atoms = water_box(n_molecules=8, seed=3)
    ref = DeepPotCalculator(exact).predict([atoms])[0]
    calc = DeepPotCalculator(comp)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [calc.predict([atoms])[0] for _ in range(2)]
    said = [w for w in caught if "outside the tabulated range" in str(w.message)]
    assert len(said) == 1, [str(w.message) for w in caught]
    for r in got:
        assert abs(r["energy"] - ref["energy"]) < 1e-10
        assert np.abs(r["forces"] - ref["forces"]).max() < 1e-10
        assert np.abs(r["stress"] - ref["stress"]).max() < 1e-12
    physics.assert_forces_fd(calc, atoms, n_atoms=4)  # the exact-net pairs are differentiated too


def test_save_load_weights_only_and_committee(tmp_path):
    comp = compress_model(small_model(seed=4), step=0.02)
    comp.save(tmp_path / "c.pt")
    data = torch.load(tmp_path / "c.pt", weights_only=True)  # no code runs when read
    assert set(data["compression"]) >= {"tables", "step", "extrapolate", "min_dist"}
    loaded = load_model(tmp_path / "c.pt")
    assert isinstance(loaded, CompressedDeepPot)

    def reload(calc):
        return DeepPotCalculator(load_model(tmp_path / "c.pt"))

    physics.assert_save_load(DeepPotCalculator(comp), reload, water_box(n_molecules=8, seed=5), rtol=0, atol=0)
    # the original weights are kept: uncompressing gives the exact model back
    assert all(torch.equal(a, b) for a, b in zip(loaded.uncompressed().state_dict().values(),
                                                 small_model(seed=4).state_dict().values()))
    # a committee of compressed models (also with an exact one), through load_calculator
    small_model(seed=6).save(tmp_path / "e.pt")
    import conlearn

    calc = conlearn.load_calculator([tmp_path / "c.pt", tmp_path / "e.pt"], device="cpu")
    atoms = water_box(n_molecules=8, seed=6)
    r = calc.predict([atoms])[0]
    ref = DeepPotCalculator([small_model(seed=4), small_model(seed=6)]).predict([atoms])[0]
    assert abs(r["energy"] - ref["energy"]) < 1e-9 and abs(r["max_devi_f"] - ref["max_devi_f"]) < 1e-9


def test_compressed_members_are_not_stacked_and_fine_tune_from_exact_weights(tmp_path):
    from conlearn.atoms.deeppot.committee import stackable

    exact = [small_model(seed=4), small_model(seed=6)]
    assert stackable(exact)
    assert not stackable([compress_model(m, step=0.05) for m in exact])  # one by one is faster
    compress_model(exact[0], step=0.05).save(tmp_path / "c.pt")
    from conlearn.atoms.deeppot import train

    class _Cfg:  # only the model section is read when an init model is given
        class model:
            type_map = exact[0].type_map

    model = train.build_model(_Cfg, [], init_model=tmp_path / "c.pt")
    assert type(model) is DeepPot and model.training  # trainable, the exact weights
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), exact[0].state_dict().values()))


def test_training_mode_refused():
    comp = compress_model(small_model(), step=0.05).train()
    with pytest.raises(RuntimeError, match="for inference"):
        DeepPotCalculator(comp).predict([water_box(n_molecules=8, seed=0)])


def test_cli_compress(tmp_path, water_small, capsys):
    from conlearn.cli import main

    small_model().save(tmp_path / "m.pt")
    assert main(["compress", str(tmp_path / "m.pt"), "-o", str(tmp_path / "c.pt"), "--step", "0.02",
                 "-d", str(water_small / "data_3")]) == 0
    out = capsys.readouterr().out
    assert "min_dist 0.8" in out or "min_dist 0.9" in out, out  # O-H bonds of the water data
    comp = load_model(tmp_path / "c.pt")
    assert comp.compression["step"] == 0.02 and 0.7 < comp.compression["min_dist"] < 1.0
    atoms = water_box(n_molecules=8, seed=7)
    a, b = (DeepPotCalculator(m).predict([atoms])[0] for m in (small_model(), comp))
    assert np.abs(a["forces"] - b["forces"]).max() < 1e-9
    assert main(["compress", str(tmp_path / "m.pt"), "-o", str(tmp_path / "bad.pt"), "--step", "0"]) == 2
    assert "--step must be positive" in capsys.readouterr().err and not (tmp_path / "bad.pt").exists()


def test_dpgen_explorer_runs_compressed_committee(tmp_path):
    """MDExplorer on two compressed model files: the same frames and deviations as on the
    exact files (same seed; trajectories agree to the tabulation error)."""
    from conlearn.atoms.dpgen.explorer import MDExplorer
    from conlearn.atoms.frames import atoms_to_frame
    from conlearn.core.records import Condition, TaskContext, TrainResult

    paths = {}
    for kind in ("exact", "compressed"):
        for k, seed in enumerate((8, 9)):
            m = small_model(seed=seed)
            m = compress_model(m, step=0.02) if kind == "compressed" else m
            m.save(tmp_path / f"{kind}{k}.pt")
        paths[kind] = [TrainResult(member=k, model_paths=(str(tmp_path / f"{kind}{k}.pt"),)) for k in range(2)]
    cond = Condition("T300", {"structure": atoms_to_frame(water_box(n_molecules=8, seed=9)), "temperature": 300,
                              "n_steps": 20, "dt_fs": 0.5, "trj_freq": 10})
    runs = {}
    for kind, models in paths.items():
        ctx = TaskContext(key=kind, iteration=0, index=0, seed=5, workdir=str(tmp_path / kind))
        (tmp_path / kind).mkdir()
        runs[kind] = MDExplorer(write_trajectory=False).explore(models, cond, ctx)
    a, b = (np.array([c.deviation for c in runs[k].candidates]) for k in ("exact", "compressed"))
    assert len(a) == len(b) == 3 and runs["compressed"].meta["blew_up"] is None
    assert np.abs(a - b).max() < 1e-8, (a, b)


@pytest.mark.skipif(not __import__("conlearn.atoms.deeppot.tabkernel", fromlist=["x"]).available(),
                    reason="numba is not installed")
@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("type_one_side", [False, True])
def test_fused_kernels_equal_torch_path(monkeypatch, precision, type_one_side):
    """The numba kernels (tabkernel) and the embedding_bag + bmm path give the same energy,
    forces and virial, also with pairs outside the table (exact-net fallback mixed in)."""
    from conlearn.atoms.deeppot import compress

    exact = small_model(precision, type_one_side)
    frames = [water_box(n_molecules=8, seed=s) for s in (4, 5)]
    for min_dist, extrapolate in ((0.8, 5.0), (2.0, 1.0)):  # the second leaves the O-H pairs outside
        comp = compress_model(exact, step=0.02, min_dist=min_dist, extrapolate=extrapolate)
        g = comp.graph([(a.positions, a.cell.array, a.pbc, [comp.type_map.index(s) for s in a.get_chemical_symbols()])
                        for a in frames])
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for fused in (False, True):
                monkeypatch.setattr(compress, "FUSED", fused)
                out[fused] = {k: v.detach().numpy() for k, v in comp.evaluate(g, virial=True).items()}
        tol = 1e-11 if precision == "float64" else 2e-5
        for key in ("energy", "forces", "virial"):
            a, b = out[False][key], out[True][key]
            scale = max(1.0, float(np.abs(a).max()))
            assert np.abs(a - b).max() <= tol * scale, (key, min_dist, np.abs(a - b).max())
