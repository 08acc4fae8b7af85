"""How good a bead model is: held-out force residual, structure and dynamics of its CG MD
against the reference trajectory, and its cost.

Metrics of one model (``model_metrics``; the ``metrics`` objects of ``summary.json``):

* ``fm_residual``: ``Σ|F - F_model|² / Σ|F|²`` on held-out mapped frames;
* ``rdf_rmse``: RMS of ``g_CG - g_ref`` over r in [0.2, r_max] nm (r_max 1.0 nm);
* ``adf_l1``: ``∫|p_CG - p_ref| dθ`` of bead triplets within 0.32 nm (0..2); ``adf_peak`` deg;
* ``density``: g/cm³ (fixed by the box in NVT: the same for every model);
* ``diffusion_ratio``: ``D_CG / D_ref`` from the MSD of unwrapped trajectories;
* ``steps_per_s``: CG MD steps per wall second; ``ps_per_s``: simulated ps per wall second;
* ``ok``: whether the CG MD ran to the end (``reason`` otherwise).
"""

from __future__ import annotations

import numpy as np

from . import analysis as A

R_RANGE = (0.2, 1.0)
ADF_CUTOFF = 0.32


def unwrap(R, box) -> np.ndarray:
    """Continuous trajectory ``[T, N, 3]`` from wrapped frames (minimum-image steps; frames
    must be close enough in time that no bead moves half a box between them)."""
    R = np.asarray(R, dtype=float)
    box = np.asarray(box, dtype=float)
    d = np.diff(R, axis=0)
    d -= box * np.round(d / box)
    return np.concatenate([R[:1], R[:1] + np.cumsum(d, axis=0)])


def structure(R, box, r_max: float = 1.0) -> dict:
    """RDF and ADF of a trajectory ``[T, N, 3]`` nm: ``{"r", "g", "theta", "p"}``."""
    r, g = A.rdf(R, box, r_max=r_max, n_bins=int(round(r_max / 0.01)))
    theta, p = A.adf(R, box, cutoff=ADF_CUTOFF)
    return {"r": r, "g": g, "theta": theta, "p": p}


def reference_metrics(traj, box, dt_ps: float, masses, r_max: float = 1.0) -> dict:
    """The reference's structure (``rdf``/``adf`` curves), diffusion (nm²/ps) and density."""
    s = structure(traj, box, r_max)
    t, msd = A.msd(unwrap(traj, box), dt_ps)
    return {**s, "msd_t": t, "msd": msd, "diffusion": A.diffusion(unwrap(traj, box), dt_ps),
            "density": A.density(float(np.sum(masses)), box),
            "adf_peak": A.first_peak(s["theta"], s["p"])[0], "rdf_peak": A.first_peak(s["r"], s["g"])}


def model_metrics(potential, heldout: dict, ref: dict, md: dict, seed: int) -> dict:
    """Metrics of ``potential`` (see the module docstring) and its RDF/ADF curves.

    heldout: ``{"R": [T, N, 3], "F": [T, N, 3], "box": [3]}`` mapped frames; ref: from
    :func:`reference_metrics`; md: ``cg_md`` settings (``masses``, ``temperature``,
    ``dt_fs``, ``friction_per_ps``, ``n_steps``, ``equil_steps``, ``save_every``; optional
    ``ml_every``: a Δ model's ML part every that many steps, by r-RESPA).
    """
    from .md import cg_md
    from .train import fm_residual

    box = np.asarray(heldout["box"], dtype=float)
    frames = [{"R": r, "F": f, "box": box} for r, f in zip(heldout["R"], heldout["F"])]
    out = {"fm_residual": fm_residual(potential, frames)}
    n_eq, n_run = int(md["equil_steps"]), int(md["n_steps"])
    k = int(md.get("ml_every", 1))
    split = dict(slow=potential.ml, slow_every=k) if k > 1 and getattr(potential, "kind", "") == "delta" else {}
    try:
        run = cg_md(potential.pair if split else potential, heldout["R"][0], box, md["masses"], n_eq + n_run,
                    md["dt_fs"], md["temperature"], md["friction_per_ps"], seed, md["save_every"], save_forces=False,
                    **split)
        ok, reason, traj, wall, steps = bool(run["ok"]), run["reason"], run["positions"], run["wall_s"], run["steps"]
    except ValueError as err:  # a NeighborError (overlap, sel overflow) is one
        ok, reason, traj, wall, steps = False, str(err), np.zeros((0,)), 0.0, 0
    out.update(ok=ok, reason=reason, steps_per_s=steps / wall if wall else None,
               ps_per_s=steps * md["dt_fs"] * 1e-3 / wall if wall else None,
               density=A.density(float(np.sum(md["masses"])), box))
    keep = traj[n_eq // md["save_every"]:] if len(traj) else traj
    if not ok or len(keep) < 4:
        out.update(rdf_rmse=None, adf_l1=None, adf_peak=None, diffusion_ratio=None, curves=None)
        return out
    s = structure(keep, box, float(ref["r"][-1] + 0.5 * (ref["r"][1] - ref["r"][0])))
    dt_ps = md["save_every"] * md["dt_fs"] * 1e-3
    s["msd_t"], s["msd"] = A.msd(keep, dt_ps)
    out.update(rdf_rmse=A.rdf_rmse(s["r"], s["g"], ref["g"], (R_RANGE[0], min(R_RANGE[1], s["r"][-1]))),
               adf_l1=A.adf_l1(s["p"], ref["p"], s["theta"]), adf_peak=A.first_peak(s["theta"], s["p"])[0],
               diffusion_ratio=A.diffusion(keep, dt_ps) / ref["diffusion"], curves=s)
    return out
