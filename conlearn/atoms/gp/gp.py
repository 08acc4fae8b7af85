"""Gaussian process over local environments: force (frame energy, frame stress) labels,
predictive means and variances, marginal likelihood, hyperparameter fits, incremental
updates.

Labels are ordered as added.  Force labels carry noise ``noise`` (eV/Å, a hyperparameter);
frame energies carry the fixed ``energy_noise`` (eV), frame stresses the fixed
``stress_noise`` (eV/Å^3, per Voigt component).  Hyperparameters, in this order:
``(sigma, length)`` of each kernel (eV, Å), then ``noise``.

Stress is ASE's: ``sigma_ab = (1/V) dE/d eps_ab`` (eV/Å^3), Voigt order xx yy zz yz xz xy,
for frames periodic in all three directions whose environments are all given.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
from scipy.optimize import minimize

from .environment import Environments, atoms_environments
from .kernels import NBodyKernel, kernel_matrix, n_rows, prior_stress_variances, prior_variances
from .prior import prior_force_variances


def stress_labels(envs: Environments, stress) -> np.ndarray:
    """Stress labels ``[n_frames, 6]`` (Voigt, eV/Å^3) from ``[n_frames, 6]`` or 3x3 arrays;
    an error unless ``envs`` are whole periodic frames."""
    GaussianProcess._check_whole_frames(envs, "stress")
    envs.frame_volumes()  # raises unless periodic
    s = np.asarray(stress, dtype=np.float64).reshape(envs.n_frames, -1)
    if s.shape[1] == 9:
        s = s.reshape(-1, 3, 3)[:, [0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    return s


class GaussianProcess:
    """FLARE-style GP force field (see ``environment`` and ``kernels`` for the model).

    Args:
        kernels: n-body kernel terms, e.g. ``[NBodyKernel(2, 0.1, 0.5), NBodyKernel(3, ...)]``.
        r_cut2, r_cut3: Å, cluster cutoffs.  cutoff: cutoff function name.
        noise: eV/Å, force label noise.  energy_noise: eV, frame energy label noise.
        jitter: added to the diagonal of the noisy matrix for stability.
        stress_noise: eV/Å^3, frame stress label noise (1e-3 eV/Å^3 = 0.16 GPa).
    """

    def __init__(self, kernels: list[NBodyKernel], r_cut2: float, r_cut3: float,
                 cutoff: str = "quadratic", noise: float = 0.05, energy_noise: float = 0.01,
                 jitter: float = 1e-10, stress_noise: float = 1e-3):
        self.kernels = list(kernels)
        self.r_cut2, self.r_cut3, self.cutoff = float(r_cut2), float(r_cut3), cutoff
        self.noise, self.energy_noise, self.jitter = float(noise), float(energy_noise), jitter
        self.stress_noise = float(stress_noise)
        self._sets: dict[str, Environments] = {}  # kind -> training envs of that kind
        self._rows: dict[str, np.ndarray] = {}  # kind -> their rows in the label order
        self.y = np.zeros(0)  # labels: eV/Å (forces) and eV (energies)
        self._is_force = np.zeros(0, dtype=bool)
        self.K = np.zeros((0, 0))  # prior covariance of the labels (no noise)
        self.L = np.zeros((0, 0))  # Cholesky factor of K + noise
        self.alpha = np.zeros(0)

    # ---- data --------------------------------------------------------------------------
    def environments(self, atoms, indices=None) -> Environments:
        """Environments of an ``ase.Atoms`` with this GP's cutoffs."""
        return atoms_environments(atoms, self.r_cut2, self.r_cut3, indices, self.cutoff)

    @property
    def n_labels(self) -> int:
        return len(self.y)

    def _noise_diag(self) -> np.ndarray:
        out = np.where(self._is_force, self.noise**2, self.energy_noise**2)
        out[self._rows.get("stress", [])] = self.stress_noise**2
        return out + self.jitter

    def train_kernel(self, envs: Environments, kind) -> np.ndarray:
        """Prior covariance ``[n_labels, rows]`` of the training labels with ``kind`` of envs."""
        out = np.zeros((self.n_labels, n_rows(envs, kind)))
        for k, tr in self._sets.items():
            out[self._rows[k]] = kernel_matrix(self.kernels, tr, k, envs, kind)
        return out

    def add(self, envs: Environments, forces=None, energy=None, stress=None) -> None:
        """Add labels and extend the Cholesky factor by a block (no refactorisation).

        Args:
            envs: environments of the labelled atoms (all atoms of each frame for energies
                and stresses).
            forces: ``[len(envs), 3]`` eV/Å on those atoms.  energy: ``[n_frames]`` eV.
            stress: ``[n_frames, 6]`` (Voigt, ASE order) or ``[n_frames, 3, 3]`` eV/Å^3,
                ASE's sign (periodic frames only).
        """
        if (envs.r_cut2, envs.r_cut3, envs.cutoff) != (self.r_cut2, self.r_cut3, self.cutoff):
            raise ValueError(f"environments with cutoffs ({envs.r_cut2}, {envs.r_cut3}, "
                             f"{envs.cutoff}) do not match the GP's ({self.r_cut2}, "
                             f"{self.r_cut3}, {self.cutoff})")
        if forces is not None:
            self._add_block(envs, "force", np.asarray(forces, dtype=np.float64).reshape(-1))
        if energy is not None:
            self._check_whole_frames(envs, "energy label")
            self._add_block(envs, "energy", np.asarray(energy, dtype=np.float64).reshape(-1))
        if stress is not None:
            self._add_block(envs, "stress", stress_labels(envs, stress).reshape(-1))

    @staticmethod
    def _check_whole_frames(envs: Environments, what: str) -> None:
        if not envs.complete():
            raise ValueError(f"a frame {what} needs the environments of all atoms of its "
                             f"frame; got {len(envs)} of {envs.n_frame_atoms}")

    def _add_block(self, envs: Environments, kind: str, y: np.ndarray) -> None:
        if len(y) != n_rows(envs, kind):
            raise ValueError(f"{len(y)} {kind} labels for {n_rows(envs, kind)} rows")
        k12 = self.train_kernel(envs, kind)
        k22 = kernel_matrix(self.kernels, envs, kind, envs, kind)
        n0, n1 = self.n_labels, len(y)
        rows = np.arange(n0, n0 + n1)
        self._sets[kind] = envs if kind not in self._sets else \
            Environments.concat([self._sets[kind], envs])
        self._rows[kind] = np.concatenate([self._rows.get(kind, np.zeros(0, int)), rows])
        self.y = np.concatenate([self.y, y])
        self._is_force = np.concatenate([self._is_force, np.full(n1, kind == "force")])
        self.K = np.block([[self.K, k12], [k12.T, k22]])
        # [[L, 0], [B^T, L22]] with L B = K12 and L22 L22^T = K22 + noise - B^T B
        b = sla.solve_triangular(self.L, k12, lower=True) if n0 else np.zeros((0, n1))
        l22 = np.linalg.cholesky(k22 + np.diag(self._noise_diag()[rows]) - b.T @ b)
        self.L = np.block([[self.L, np.zeros((n0, n1))], [b.T, l22]])
        self.alpha = sla.cho_solve((self.L, True), self.y)

    def refactorize(self) -> None:
        """Recompute K and its Cholesky factor from scratch (after hyperparameters change)."""
        self.K = self._full_kernel()
        self.L = np.linalg.cholesky(self.K + np.diag(self._noise_diag()))
        self.alpha = sla.cho_solve((self.L, True), self.y)

    def _full_kernel(self, grad: bool = False):
        n, kinds = self.n_labels, list(self._sets)
        K = np.zeros((n, n))
        dK = np.zeros((2 * len(self.kernels), n, n)) if grad else None
        for i, ka in enumerate(kinds):
            for kb in kinds[i:]:
                out = kernel_matrix(self.kernels, self._sets[ka], ka, self._sets[kb], kb, grad)
                ra, rb = np.ix_(self._rows[ka], self._rows[kb])
                for mat, val in ((K, out[0]), (dK, out[1])) if grad else ((K, out),):
                    mat[..., ra, rb] = val
                    mat[..., rb.T, ra.T] = np.swapaxes(val, -1, -2)
        return (K, dK) if grad else K

    # ---- prediction --------------------------------------------------------------------
    def predict(self, envs: Environments, std: bool = True, stress: bool = False,
                stress_std: bool | None = None) -> dict:
        """Posterior means (and standard deviations) for ``envs`` in one pass.

        Returns a dict: ``forces`` ``[n, 3]`` eV/Å, ``local_energies`` ``[n]`` eV,
        ``energy`` ``[n_frames]`` eV, and with ``std``: ``force_std`` ``[n, 3]`` eV/Å and
        ``local_energy_std`` ``[n]`` eV (epistemic: no label noise).  With ``stress``
        (whole periodic frames only) also ``stress`` ``[n_frames, 6]`` eV/Å^3 (ASE sign
        and Voigt order) and with ``stress_std`` (default: ``std``) ``stress_std``
        ``[n_frames, 6]`` eV/Å^3 (its prior costs a double sum over each frame's clusters).
        """
        n = len(envs)
        kinds = ("force", "local_energy")
        if stress:
            self._check_whole_frames(envs, "stress")
            envs.frame_volumes()  # raises unless periodic
            kinds += ("stress",)
        ks = self.train_kernel(envs, kinds)
        mean = ks.T @ self.alpha
        out = {"forces": mean[:3 * n].reshape(n, 3), "local_energies": mean[3 * n:4 * n]}
        out["energy"] = np.bincount(envs.frame, out["local_energies"], envs.n_frames)
        if stress:
            out["stress"] = mean[4 * n:].reshape(-1, 6)
        stress_std = std if stress_std is None else stress_std
        if std or (stress and stress_std):
            v = sla.solve_triangular(self.L, ks, lower=True) if self.n_labels else ks[:0]
            explained = np.einsum("ij,ij->j", v, v)
        if std:
            prior_f, prior_e = prior_variances(self.kernels, envs)
            out["force_std"] = np.sqrt(np.clip(prior_f - explained[:3 * n].reshape(n, 3), 0, None))
            out["local_energy_std"] = np.sqrt(np.clip(prior_e - explained[3 * n:4 * n], 0, None))
        if stress and stress_std:
            prior_s = prior_stress_variances(self.kernels, envs)
            out["stress_std"] = np.sqrt(np.clip(prior_s - explained[4 * n:].reshape(-1, 6), 0, None))
        return out

    def force_std(self, envs: Environments) -> np.ndarray:
        """Posterior (epistemic) std of each force component ``[n, 3]`` eV/Å, without the
        mean or the local energies: the cheapest exact uncertainty (the OTF trigger)."""
        n = len(envs)
        prior = prior_force_variances(self.kernels, envs)
        if not self.n_labels:
            return np.sqrt(prior)
        v = sla.solve_triangular(self.L, self.train_kernel(envs, "force"), lower=True)
        explained = np.einsum("ij,ij->j", v, v).reshape(n, 3)
        return np.sqrt(np.clip(prior - explained, 0, None))

    # ---- hyperparameters ---------------------------------------------------------------
    @property
    def hyper_names(self) -> list[str]:
        return [f"{h}{k.body}" for k in self.kernels for h in k.hyper_names] + ["noise"]

    @property
    def hyperparameters(self) -> np.ndarray:
        return np.array([v for k in self.kernels for v in (k.sigma, k.length)] + [self.noise])

    def set_hyperparameters(self, theta, refactorize: bool = True) -> None:
        """Set ``(sigma, length)`` per kernel and ``noise``; refactorise by default."""
        theta = np.asarray(theta, dtype=np.float64)
        for i, k in enumerate(self.kernels):
            k.sigma, k.length = float(theta[2 * i]), float(theta[2 * i + 1])
        self.noise = float(theta[-1])
        if refactorize and self.n_labels:
            self.refactorize()

    def log_likelihood(self, grad: bool = False):
        """Log marginal likelihood of the labels at the current hyperparameters, and with
        ``grad`` its gradient ``[n_hyper]`` (ordered as ``hyper_names``)."""
        K, dK = self._full_kernel(grad=True) if grad else (self._full_kernel(), None)
        L = np.linalg.cholesky(K + np.diag(self._noise_diag()))
        alpha = sla.cho_solve((L, True), self.y)
        n = self.n_labels
        ll = -0.5 * self.y @ alpha - np.log(np.diag(L)).sum() - 0.5 * n * np.log(2 * np.pi)
        if not grad:
            return ll
        Q = np.outer(alpha, alpha) - sla.cho_solve((L, True), np.eye(n))
        g = 0.5 * np.einsum("ij,kij->k", Q, dK)
        g_noise = self.noise * np.diag(Q)[self._is_force].sum()  # d(noise^2 I)/d noise = 2 noise
        return ll, np.append(g, g_noise)

    def optimize(self, noise_min: float = 1e-3, length_bounds=(0.05, 10.0),
                 maxiter: int = 50):
        """Maximise the log marginal likelihood with L-BFGS-B over log-hyperparameters.

        ``noise >= noise_min`` (eV/Å); lengths within ``length_bounds`` (Å).  Sets the
        optimum, refactorises, and returns scipy's ``OptimizeResult``.
        """
        names = self.hyper_names
        bounds = [(np.log(noise_min), None) if h == "noise" else
                  (tuple(np.log(length_bounds)) if h.startswith("length") else (None, None))
                  for h in names]

        best = [np.inf]

        def objective(log_theta):
            self.set_hyperparameters(np.exp(log_theta), refactorize=False)
            try:
                ll, g = self.log_likelihood(grad=True)
            except np.linalg.LinAlgError:  # a trial step too far: make the line search back off
                return abs(best[0]) * 10 + 1e6, np.zeros_like(log_theta)
            best[0] = min(best[0], -ll)
            return -ll, -g * np.exp(log_theta)

        x0 = np.log(self.hyperparameters)
        x0[-1] = max(x0[-1], np.log(noise_min))
        res = minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": maxiter})
        self.set_hyperparameters(np.exp(res.x))
        return res
