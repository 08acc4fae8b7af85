"""Sparse GP force field: the projected-process (DTC) form with local-energy inducing
variables, as in FLARE's SGP (Vandermause et al., npj Comput. Mater. 8, 69 (2022)).

The latent variables ``u`` are the local energies (eV) of ``m`` *inducing environments*
picked from the training environments, prior ``u ~ N(0, K_uu)``.  The labels ``y`` (force
components, eV/Å, frame energies, eV, frame stresses, eV/Å^3) see the cluster-energy
field only through ``u`` (DTC, "deterministic training conditional"), with diagonal label
noise ``Λ``::

    Q_ff = K_fu K_uu^-1 K_uf,          y ~ N(0, Q_ff + Λ)
    Σ = (K_uu + K_uf Λ^-1 K_fu)^-1,    mean(f*) = K_*u Σ K_uf Λ^-1 y = K_*u α
    var(f*) = k_** - Q_** + K_*u Σ K_u*

Every block is ``kernel_matrix``: "local_energy" rows for ``u``, "force"/"energy"/"stress"
for the labels.  Training costs ``O(n m^2)`` for ``n`` labels (the factors of two ``m x m``
matrices, redone after each ``add``), prediction ``m`` kernel columns per predicted label
instead of the full GP's ``n``.

Uncertainty: ``force_std`` / ``local_energy_std`` are the DTC predictive std without label
noise, i.e. *epistemic*: ``k_** - Q_**`` is what the inducing set cannot represent (the
label-free residual that the greedy rule maximises), ``K_*u Σ K_u*`` what the labels leave
undetermined of ``u``.

Exactness: forces are derivatives of local energies, not combinations of them, so DTC is
not exact by construction even with every training environment inducing.  But the n-body
kernels are smooth functions of 1 (pairs) or 3 (triplets) distances, numerically of low
rank, and the local energies of a few dozen environments span them: then ``Q_ff = K_ff`` up
to the jitter and the sparse GP reproduces the full GP (``tests/unit/gp/test_sparse.py``).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .environment import Environments
from .gp import GaussianProcess, stress_labels
from .kernels import NBodyKernel, kernel_matrix, n_rows, prior_stress_variances, prior_variances
from .prior import prior_force_variances

RULES = ("all", "random", "greedy")
LATENT = "local_energy"


def _solve(L, b, trans=False):
    return sla.solve_triangular(L, b, lower=True, trans=1 if trans else 0)


def _dtc(K_uu, K_uf, y, lam, jitter):
    """Factors of the DTC model: ``L_uu`` (of ``K_uu + jitter mean(diag K_uu) I``),
    ``V = L_uu^-1 K_uf``, ``A = V Λ^-1/2``, ``L_B`` (Cholesky of ``I + A A^T``),
    ``c = L_B^-1 A Λ^-1/2 y`` and ``α = L_uu^-T L_B^-T c``."""
    m = len(K_uu)
    L_uu = np.linalg.cholesky(K_uu + jitter * np.trace(K_uu) / m * np.eye(m))
    V = _solve(L_uu, K_uf)
    A = V / np.sqrt(lam)
    L_B = np.linalg.cholesky(np.eye(m) + A @ A.T)
    c = _solve(L_B, A @ (y / np.sqrt(lam)))
    alpha = _solve(L_uu, _solve(L_B, c, trans=True), trans=True)
    return L_uu, V, A, L_B, c, alpha


class SparseGP:
    """DTC sparse GP over local environments (see the module docstring); a drop-in for
    ``GaussianProcess`` (same ``add``/``predict``/``force_std``/hyperparameter methods).

    Args:
        kernels, r_cut2, r_cut3, cutoff, noise, energy_noise, stress_noise: as
            ``GaussianProcess``.
        select: how ``add`` picks inducing environments among the labelled ones: ``"all"``
            (in order), ``"random"``, or ``"greedy"``: largest residual local-energy
            variance ``k - Q`` first (a pivoted Cholesky), stopping early when that is
            below ``jitter`` times the candidates' mean prior variance.
        n_inducing: cap on the total number of inducing environments (None: no cap).
        jitter: relative; ``jitter * mean(diag K_uu)`` is added to the diagonal of ``K_uu``
            (part of the model: the likelihood and its gradient include it).
        seed: of the ``"random"`` rule.
    """

    def __init__(self, kernels: list[NBodyKernel], r_cut2: float, r_cut3: float,
                 cutoff: str = "quadratic", noise: float = 0.05, energy_noise: float = 0.01,
                 select: str = "greedy", n_inducing: int | None = None,
                 jitter: float = 1e-10, seed: int = 0, stress_noise: float = 1e-3):
        if select not in RULES:
            raise ValueError(f"unknown inducing rule {select!r}; choose one of {RULES}")
        self.kernels = list(kernels)
        self.r_cut2, self.r_cut3, self.cutoff = float(r_cut2), float(r_cut3), cutoff
        self.noise, self.energy_noise, self.jitter = float(noise), float(energy_noise), jitter
        self.stress_noise, self.select, self.n_inducing = float(stress_noise), select, n_inducing
        self.rng = np.random.default_rng(seed)
        self.inducing: Environments | None = None
        self._labels: dict[str, Environments] = {}  # kind -> labelled envs of that kind
        self._label_rows: dict[str, np.ndarray] = {}  # kind -> their rows in y
        self.y = np.zeros(0)  # eV/Å (forces), eV (energies), eV/Å^3 (stresses)
        self._is_force = np.zeros(0, dtype=bool)
        self.K_uu = np.zeros((0, 0))  # [m, m] eV^2
        self.K_uf = np.zeros((0, 0))  # [m, n_labels] eV^2/Å, eV^2, eV^2/Å^3 by label kind
        self.L_uu, self.L_B = np.zeros((0, 0)), np.zeros((0, 0))
        self.alpha = np.zeros(0)  # [m] 1/eV: mean(f*) = K_*u alpha

    # shared with GaussianProcess: these use only the attributes and methods defined here
    environments = GaussianProcess.environments
    hyper_names = GaussianProcess.hyper_names
    hyperparameters = GaussianProcess.hyperparameters
    optimize = GaussianProcess.optimize

    def set_hyperparameters(self, theta, refactorize: bool = True) -> None:
        """Set ``(sigma, length)`` per kernel and ``noise``; refactorise by default."""
        theta = np.asarray(theta, dtype=np.float64)
        for i, k in enumerate(self.kernels):
            k.sigma, k.length = float(theta[2 * i]), float(theta[2 * i + 1])
        self.noise = float(theta[-1])
        if refactorize:
            self.refactorize()

    @property
    def n_labels(self) -> int:
        return len(self.y)

    @property
    def n_latent(self) -> int:
        """Number of inducing environments ``m``."""
        return len(self.K_uu)

    @property
    def _sets(self) -> dict[str, Environments]:
        # with _rows and alpha: the mean as weights on latent covariances, as the full GP's
        # (the protocol that ``mapping.map_gp`` reads), so the sparse mean maps to splines
        return {} if self.inducing is None else {LATENT: self.inducing}

    @property
    def _rows(self) -> dict[str, np.ndarray]:
        return {} if self.inducing is None else {LATENT: np.arange(self.n_latent)}

    def _noise_diag(self) -> np.ndarray:
        """``diag Λ`` ``[n_labels]``: noise^2 for forces, energy_noise^2, stress_noise^2."""
        out = np.where(self._is_force, self.noise**2, self.energy_noise**2)
        out[self._label_rows.get("stress", [])] = self.stress_noise**2
        return out

    # ---- data --------------------------------------------------------------------------
    def _label_kernel(self, envs: Environments, grad: bool = False):
        """``K(local energies of envs, labels)`` ``[len(envs), n_labels]``; with ``grad``
        also ``[2 n_kernels, len(envs), n_labels]``."""
        out = np.zeros((len(envs), self.n_labels))
        d = np.zeros((2 * len(self.kernels),) + out.shape) if grad else None
        for kind, tr in self._labels.items():
            k = kernel_matrix(self.kernels, envs, LATENT, tr, kind, grad)
            rows = self._label_rows[kind]
            if grad:
                out[:, rows], d[:, :, rows] = k
            else:
                out[:, rows] = k
        return (out, d) if grad else out

    def add(self, envs: Environments, forces=None, energy=None, stress=None,
            inducing=None) -> None:
        """Add labels of ``envs`` and inducing environments among them, then refactorise.

        Args:
            envs: environments of the labelled atoms (all atoms of each frame for energies
                and stresses).
            forces: ``[len(envs), 3]`` eV/Å.  energy: ``[n_frames]`` eV.
            stress: ``[n_frames, 6]`` (Voigt, ASE order) or ``[n_frames, 3, 3]`` eV/Å^3,
                ASE's sign (periodic frames only).
            inducing: None (the model's rule up to its cap), an int (at most that many, by
                the rule), or indices into ``envs`` (exactly those).
        """
        if (envs.r_cut2, envs.r_cut3, envs.cutoff) != (self.r_cut2, self.r_cut3, self.cutoff):
            raise ValueError(f"environments with cutoffs ({envs.r_cut2}, {envs.r_cut3}, "
                             f"{envs.cutoff}) do not match the model's ({self.r_cut2}, "
                             f"{self.r_cut3}, {self.cutoff})")
        if energy is not None:
            GaussianProcess._check_whole_frames(envs, "energy label")
        if stress is not None:
            stress = stress_labels(envs, stress)
        self._add_inducing(envs.subset(self._choose(envs, inducing)))
        for kind, y in (("force", forces), ("energy", energy), ("stress", stress)):
            if y is not None:
                self._add_labels(envs, kind, np.asarray(y, dtype=np.float64).reshape(-1))
        self._factor()

    def add_inducing(self, envs: Environments, inducing=None) -> None:
        """Add inducing environments (labelled or not) chosen from ``envs`` as in ``add``."""
        self._add_inducing(envs.subset(self._choose(envs, inducing)))
        self._factor()

    def _add_inducing(self, new: Environments) -> None:
        if not len(new):
            return
        k_new = kernel_matrix(self.kernels, new, LATENT, new, LATENT)
        if self.inducing is None:
            self.inducing, self.K_uu, self.K_uf = new, k_new, self._label_kernel(new)
            return
        k_on = kernel_matrix(self.kernels, self.inducing, LATENT, new, LATENT)
        self.K_uu = np.block([[self.K_uu, k_on], [k_on.T, k_new]])
        self.K_uf = np.vstack([self.K_uf, self._label_kernel(new)])
        self.inducing = Environments.concat([self.inducing, new])

    def _add_labels(self, envs: Environments, kind: str, y: np.ndarray) -> None:
        if len(y) != n_rows(envs, kind):
            raise ValueError(f"{len(y)} {kind} labels for {n_rows(envs, kind)} rows")
        k = (kernel_matrix(self.kernels, self.inducing, LATENT, envs, kind)
             if self.inducing is not None else np.zeros((0, len(y))))
        rows = self.n_labels + np.arange(len(y))
        self._labels[kind] = envs if kind not in self._labels else \
            Environments.concat([self._labels[kind], envs])
        self._label_rows[kind] = np.concatenate([self._label_rows.get(kind, rows[:0]), rows])
        self.y = np.concatenate([self.y, y])
        self._is_force = np.concatenate([self._is_force, np.full(len(y), kind == "force")])
        self.K_uf = np.hstack([self.K_uf, k])

    def _choose(self, envs: Environments, inducing) -> np.ndarray:
        """Indices into ``envs`` of new inducing environments (see ``add``)."""
        if inducing is not None and not np.isscalar(inducing):
            return np.asarray(inducing, dtype=np.int64).reshape(-1)
        k = len(envs) if inducing is None else min(int(inducing), len(envs))
        if self.n_inducing is not None:
            k = min(k, self.n_inducing - self.n_latent)
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        if self.select == "all":
            return np.arange(k)
        if self.select == "random":
            return np.sort(self.rng.choice(len(envs), k, replace=False))
        return self._greedy(envs, k)

    def _greedy(self, envs: Environments, k: int) -> np.ndarray:
        """Pivoted Cholesky on the local energies of ``envs`` given the current inducing set:
        each step takes the env of largest residual variance ``k_ii - Q_ii`` (eV^2)."""
        K_cc = kernel_matrix(self.kernels, envs, LATENT, envs, LATENT)
        rows = []  # rows of the (incomplete) Cholesky factor over the candidates
        if self.n_latent:
            K_uc = kernel_matrix(self.kernels, self.inducing, LATENT, envs, LATENT)
            rows = list(_solve(self.L_uu, K_uc))
        d = np.diag(K_cc) - sum(r * r for r in rows)
        tol, chosen = self.jitter * np.diag(K_cc).mean(), []
        for _ in range(k):
            j = int(np.argmax(d))
            if d[j] <= tol:
                break
            r = (K_cc[j] - sum(x[j] * x for x in rows)) / np.sqrt(d[j])
            rows.append(r)
            d = d - r * r
            chosen.append(j)
            d[chosen] = -np.inf
        return np.sort(np.array(chosen, dtype=np.int64))

    # ---- factors -------------------------------------------------------------------------
    def _factor(self) -> None:
        if not self.n_latent:
            self.L_uu = self.L_B = np.zeros((0, 0))
            self.alpha = np.zeros(0)
            return
        self.L_uu, _, _, self.L_B, _, self.alpha = _dtc(
            self.K_uu, self.K_uf, self.y, self._noise_diag(), self.jitter)

    def refactorize(self) -> None:
        """Recompute ``K_uu``, ``K_uf`` and the factors (after hyperparameters change)."""
        if self.inducing is not None:
            self.K_uu = kernel_matrix(self.kernels, self.inducing, LATENT, self.inducing, LATENT)
            self.K_uf = self._label_kernel(self.inducing)
        self._factor()

    # ---- prediction --------------------------------------------------------------------
    def _k_star(self, envs: Environments, kind) -> np.ndarray:
        """``K(labels of kind of envs, u)`` ``[rows, m]``."""
        if self.inducing is None:
            return np.zeros((n_rows(envs, kind), 0))
        return kernel_matrix(self.kernels, envs, kind, self.inducing, LATENT)

    def _explained(self, K_su: np.ndarray) -> np.ndarray:
        """``diag(Q_** - K_*u Σ K_u*)`` ``[rows]`` for ``K_su`` ``[rows, m]``."""
        if not self.n_latent:
            return np.zeros(len(K_su))
        W = _solve(self.L_uu, K_su.T)
        return (W * W).sum(0) - (_solve(self.L_B, W) ** 2).sum(0)

    def predict(self, envs: Environments, std: bool = True, stress: bool = False,
                stress_std: bool | None = None) -> dict:
        """Posterior means and DTC standard deviations (epistemic: no label noise); the
        arguments, keys, shapes and units of ``GaussianProcess.predict``."""
        n, kinds = len(envs), ("force", LATENT)
        if stress:
            GaussianProcess._check_whole_frames(envs, "stress")
            envs.frame_volumes()  # raises unless periodic
            kinds += ("stress",)
        ks = self._k_star(envs, kinds)
        mean = ks @ self.alpha
        out = {"forces": mean[:3 * n].reshape(n, 3), "local_energies": mean[3 * n:4 * n]}
        out["energy"] = np.bincount(envs.frame, out["local_energies"], envs.n_frames)
        stress_std = std if stress_std is None else stress_std
        if stress:
            out["stress"] = mean[4 * n:].reshape(-1, 6)
        if std or (stress and stress_std):
            explained = self._explained(ks)
        if std:
            prior = np.concatenate(prior_variances(self.kernels, envs), axis=None)  # [4 n]
            sd = np.sqrt(np.clip(prior - explained[:4 * n], 0, None))
            out["force_std"], out["local_energy_std"] = sd[:3 * n].reshape(n, 3), sd[3 * n:]
        if stress and stress_std:
            prior = prior_stress_variances(self.kernels, envs).ravel()
            out["stress_std"] = np.sqrt(np.clip(prior - explained[4 * n:], 0, None)).reshape(-1, 6)
        return out

    def force_std(self, envs: Environments) -> np.ndarray:
        """DTC (epistemic) std of each force component ``[n, 3]`` eV/Å, without the mean."""
        prior = prior_force_variances(self.kernels, envs).ravel()
        var = prior - self._explained(self._k_star(envs, "force"))
        return np.sqrt(np.clip(var, 0, None)).reshape(len(envs), 3)

    # ---- hyperparameters ---------------------------------------------------------------
    def log_likelihood(self, grad: bool = False):
        """Log marginal likelihood ``log N(y; 0, Q_ff + Λ)`` of the DTC model at the current
        hyperparameters; with ``grad`` also its analytic gradient ``[n_hyper]`` (ordered as
        ``hyper_names``), ``O(n m^2)`` besides the kernel blocks."""
        if self.inducing is None:
            raise ValueError("the sparse GP has no inducing environments yet")
        ind = self.inducing
        if grad:
            K_uu, dK_uu = kernel_matrix(self.kernels, ind, LATENT, ind, LATENT, grad=True)
            K_uf, dK_uf = self._label_kernel(ind, grad=True)
        else:
            K_uu = kernel_matrix(self.kernels, ind, LATENT, ind, LATENT)
            K_uf = self._label_kernel(ind)
        lam, y, m = self._noise_diag(), self.y, len(K_uu)
        L_uu, V, A, L_B, c, _ = _dtc(K_uu, K_uf, y, lam, self.jitter)
        ll = (-0.5 * (y @ (y / lam) - c @ c) - 0.5 * np.log(lam).sum()
              - np.log(np.diag(L_B)).sum() - 0.5 * len(y) * np.log(2 * np.pi))
        if not grad:
            return ll
        # dLL = -tr(R dC) / 2 with C = Q_ff + Λ, R = C^-1 - a a^T, a = C^-1 y, and
        # dQ_ff = dK_fu P + P^T dK_uf - P^T dK_uu P, P = K_uu^-1 K_uf, C^-1 = Λ^-1 - G^T G
        G = _solve(L_B, A) / np.sqrt(lam)
        a = y / lam - G.T @ c
        P = _solve(L_uu, V, trans=True)
        M1 = P / lam - (P @ G.T) @ G - np.outer(P @ a, a)  # P R  [m, n]
        dK_uu = dK_uu + (self.jitter / m) * np.einsum("kii->k", dK_uu)[:, None, None] * np.eye(m)
        g = (-np.einsum("ij,kij->k", M1, dK_uf)
             + 0.5 * np.einsum("ij,kij->k", M1 @ P.T, dK_uu))
        diag_r = 1.0 / lam - (G * G).sum(0) - a * a
        return ll, np.append(g, -self.noise * diag_r[self._is_force].sum())
