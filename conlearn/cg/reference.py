"""The passive reference trajectory of a CG run, mapped to beads.

``spce``/``methanol``: all-atom OpenMM NVT (:func:`conlearn.cg.allatom.run_allatom`),
equilibrated, then mapped with the configured operator (centre of mass, of geometry, or
one atom per molecule): bead positions ``R [T, N, 3]`` nm and mapped forces ``F [T, N, 3]``
kJ/mol/nm. ``mw``: Langevin MD of the mW bead oracle itself (positions and exact forces).
The record also holds what labels need later (the all-atom spec and the Mapping) and the
reference's cost (steps and simulated ps per wall second).
"""

from __future__ import annotations

import numpy as np

from .config import CGConfig


def reference_trajectory(cfg: CGConfig, log=print) -> dict:
    """``{"R", "F", "box", "masses" [N] amu, "dt_ps" between frames, "steps_per_s", "ps_per_s",
    "spec", "mapping"}`` of the reference (``spec``/``mapping`` None for mw)."""
    if cfg.system.liquid == "mw":
        return _mw(cfg, log)
    return _allatom(cfg, log)


def _mw(cfg: CGConfig, log) -> dict:
    from .md import cg_md
    from .toy import MW, lattice_liquid

    s, ini = cfg.system, cfg.initial
    mw = MW()
    R0, box = lattice_liquid(s.n_molecules, seed=cfg.loop.seed)
    masses = np.full(len(R0), mw.mass)
    log(f"reference: mW MD, {s.n_molecules} beads, {ini.equil_steps} + {ini.n_steps} steps")
    out = cg_md(mw, R0, box, masses, ini.equil_steps + ini.n_steps, s.dt_fs, s.temperature, 1.0,
                cfg.loop.seed, ini.save_every)
    if not out["ok"]:
        raise RuntimeError(f"the mW reference MD failed: {out['reason']}")
    skip = ini.equil_steps // ini.save_every
    return {"R": out["positions"][skip:], "F": out["forces"][skip:], "box": np.asarray(box), "masses": masses,
            "dt_ps": ini.save_every * s.dt_fs * 1e-3, "steps_per_s": out["steps"] / out["wall_s"],
            "ps_per_s": out["steps"] * s.dt_fs * 1e-3 / out["wall_s"], "spec": None, "mapping": None}


def make_mapping(cfg: CGConfig, masses, molecule_of_atom):
    from . import mapping as M

    kind = cfg.mapping.kind
    if kind == "com":
        return M.com_mapping(masses, molecule_of_atom)
    if kind == "cog":
        return M.cog_mapping(masses, molecule_of_atom)
    return M.atom_mapping(masses, molecule_of_atom, cfg.mapping.atom)


def _allatom(cfg: CGConfig, log) -> dict:
    from .allatom import AllAtomSpec, run_allatom

    s, ini = cfg.system, cfg.initial
    spec = AllAtomSpec(liquid=s.liquid, n_molecules=s.n_molecules, temperature=s.temperature, dt_fs=s.dt_fs,
                       cutoff_nm=s.cutoff_nm, platform=s.platform)
    log(f"reference: all-atom {s.liquid}, {s.n_molecules} molecules, {ini.equil_steps} + {ini.n_steps} steps")
    start = None
    if ini.equil_steps:
        start = run_allatom(spec, ini.equil_steps, ini.equil_steps, cfg.loop.seed)["state"]
    aa = run_allatom(spec, ini.n_steps, ini.save_every, cfg.loop.seed + 1, start=start)
    mapping = make_mapping(cfg, aa["masses"], aa["molecule_of_atom"])
    box = np.asarray(aa["box"], dtype=float)
    return {"R": mapping.map_positions(aa["positions"], box), "F": mapping.map_forces(aa["forces"]), "box": box,
            "masses": np.asarray(mapping.bead_masses, dtype=float), "dt_ps": ini.save_every * s.dt_fs * 1e-3,
            "steps_per_s": aa["steps"] / aa["wall_s"], "ps_per_s": aa["steps"] * s.dt_fs * 1e-3 / aa["wall_s"],
            "spec": spec.__dict__.copy(), "mapping": mapping}


def split_frames(cfg: CGConfig, ref: dict) -> tuple[dict, dict]:
    """``(train, heldout)`` dicts of ``R``, ``F`` ``[T, N, 3]`` and ``box``: the first frames
    (at most ``initial.train_frames``, evenly spaced) and the last ``heldout_fraction``."""
    n = len(ref["R"])
    n_held = int(round(n * cfg.initial.heldout_fraction))
    idx = np.arange(n - n_held)
    if cfg.initial.train_frames is not None and len(idx) > cfg.initial.train_frames:
        idx = idx[np.linspace(0, len(idx) - 1, cfg.initial.train_frames).round().astype(int)]
    box = np.asarray(ref["box"], dtype=float)
    return ({"R": ref["R"][idx], "F": ref["F"][idx], "box": box},
            {"R": ref["R"][n - n_held:], "F": ref["F"][n - n_held:], "box": box})
