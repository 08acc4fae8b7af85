"""Reinforced dynamics (RiD): free-energy surfaces over collective variables, learned concurrently.

Explore = MD biased by an ensemble of neural-network free energies A(s), the bias switched on
only where the ensemble agrees; label = restrained MD measuring the mean force -∇A at selected
CV points; train = fit A so that its gradient matches the mean forces. See docs/rid.md.

Heavy parts (torch models, OpenMM) are imported on first use.
"""

from __future__ import annotations


def load_free_energy(run_dir):
    """The final free-energy ensemble of a RiD run directory: an object with ``A(s)`` (kJ/mol)
    and ``mean_force(s)`` (kJ/mol/rad) on arrays [n, d] (see :class:`conlearn.rid.model.FreeEnergy`)."""
    from .model import load_run_free_energy

    return load_run_free_energy(run_dir)


__all__ = ["load_free_energy"]
