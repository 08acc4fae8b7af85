"""Training one closure member: the autoencoder (learned moments), then the closure network.

Autoencoder. Input: the Hermite moments mu [N, 2, D + 1] of the normalised distributions
(exact linear functionals of ghat, hhat). Encoder: linear, w = C mu, so the learned moments are
W = int f phi(xi) dv with polynomial phi; rows 0, 1 are fixed (stress, heat flux), the learned
rows are kept orthogonal to them and to the conservation constraints and start from the
principal directions of the data. Decoder: tanh MLP w -> (ghat, hhat) - Maxwellian on the xi
grid. Loss: mean squared reconstruction error of (ghat, hhat).

Closure. A tanh MLP z = (w - w_eq)/w_scale -> mu [N, 2, D + 2] as in
:class:`conlearn.kinetic.closure.Member` (equilibrium exact, projected onto the known moments),
loss: mean squared error of mu scaled by the data's spread per component.

Each member trains on its own bootstrap resample of the cells (seeded), which makes the
ensemble disagree where the data do not determine the closure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import moments as mom
from .closure import Member
from .data import stack


@dataclass(frozen=True)
class TrainSettings:
    """degree: D of the moment polynomials; M = 2D - 3 moments (2 fixed + learned);
    hidden: closure MLP widths; decoder_hidden: decoder widths; ae_steps, steps: Adam steps of
    autoencoder and closure from scratch; reuse_steps: closure steps when warm-started
    (autoencoder: a third of ae_steps); lr: initial learning rate; batch: minibatch cells;
    trust_quantile q, trust_margin m: the closure's input range (see :func:`trust_range`)."""

    degree: int = 4
    hidden: tuple[int, ...] = (32, 32)
    decoder_hidden: tuple[int, ...] = (32,)
    ae_steps: int = 300
    steps: int = 2000
    reuse_steps: int = 800
    lr: float = 3e-3
    batch: int = 1024
    linear: bool = False
    hyperbolic: float = 0.0
    hyperbolic_batch: int = 128
    trust_quantile: float = 0.0
    trust_margin: float = 0.1


def _mlp(n_in: int, hidden, n_out: int, gen: torch.Generator) -> nn.Sequential:
    layers, a = [], n_in
    for b in hidden:
        layers += [nn.Linear(a, b, dtype=torch.float64), nn.Tanh()]
        a = b
    layers.append(nn.Linear(a, n_out, dtype=torch.float64))
    net = nn.Sequential(*layers)
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=torch.float64)
                               / math.sqrt(m.weight.shape[1]))
                m.bias.zero_()
        net[-1].weight.mul_(0.1)
    return net


def _layers(net: nn.Sequential) -> list:
    return [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in net if isinstance(m, nn.Linear)]


def _load_layers(net: nn.Sequential, layers: list) -> bool:
    lin = [m for m in net if isinstance(m, nn.Linear)]
    if len(lin) != len(layers) or any(m.weight.shape != W.shape for m, (W, _) in zip(lin, layers)):
        return False
    with torch.no_grad():
        for m, (W, b) in zip(lin, layers):
            m.weight.copy_(torch.as_tensor(W))
            m.bias.copy_(torch.as_tensor(b))
    return True


def _free_basis(D: int) -> np.ndarray:
    """Orthonormal rows [2D - 5, 2(D+1)] of the moment space (:func:`moments.moment_space`)
    orthogonal to the fixed moments: where the learned rows live."""
    mask = mom.moment_space(D).reshape(-1)
    E = np.eye(mask.size)[mask]                              # coordinates of the space
    F = mom.fixed_coefficients(D).reshape(2, -1) * mask      # the fixed rows inside it
    qf, _ = np.linalg.qr(F.T)
    R = E - (E @ qf) @ qf.T
    u, sv, vt = np.linalg.svd(R, full_matrices=False)
    return vt[sv > 1e-8]


def _pca_rows(X: np.ndarray, B: np.ndarray, k: int) -> np.ndarray:
    """The k principal directions of the data X [N, 2(D+1)] inside the row space of B."""
    Y = X @ B.T
    _, _, vt = np.linalg.svd(Y - Y.mean(0), full_matrices=False)
    return vt[:k] @ B


def _adam(params, steps: int, lr: float, loss_fn, gen: torch.Generator, n: int, batch: int) -> float:
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1), eta_min=lr * 0.02)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        idx = torch.randint(n, (min(batch, n),), generator=gen)
        opt.zero_grad()
        loss = loss_fn(idx)
        loss.backward()
        if all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in params):
            opt.step()           # (eigenvalue gradients can be infinite at a repeated eigenvalue)
        sched.step()
    return float(loss.detach())


def train_autoencoder(mu: np.ndarray, ghat: np.ndarray, s: TrainSettings, gen: torch.Generator,
                      previous: Member | None):
    """(C [M, 2, D+1], w_scale [M], decoder layers, ghat_scale, final loss)."""
    D = s.degree
    M = mom.n_moments(D)
    X = (mu[:, :, :D + 1] - mom.equilibrium(D + 1)).reshape(len(mu), -1)
    B = _free_basis(D)
    fixed = mom.fixed_coefficients(D).reshape(2, -1)
    if previous is not None and previous.C.shape == (M, 2, D + 1):
        learned0 = previous.C[2:].reshape(M - 2, -1)
    else:
        learned0 = _pca_rows(X, B, M - 2)
    Xt, Bt = torch.as_tensor(X), torch.as_tensor(B)
    raw = nn.Parameter(torch.as_tensor(learned0 @ B.T))      # coordinates in the free basis
    Ft = torch.as_tensor(fixed)
    w0 = X @ np.concatenate([fixed, learned0]).T
    w_scale = np.maximum(w0.std(0), 1e-4)
    target = (ghat - mom.maxwell_hat()).reshape(len(ghat), -1)
    ghat_scale = float(max(target.std(), 1e-6))
    Tt = torch.as_tensor(target / ghat_scale)
    dec = _mlp(M, s.decoder_hidden, target.shape[1], gen)
    if previous is not None and previous.decoder:
        _load_layers(dec, previous.decoder)
    ws = torch.as_tensor(w_scale)

    def rows():
        return torch.cat([Ft, raw @ Bt])

    def loss_fn(idx):
        z = Xt[idx] @ rows().T / ws
        return ((dec(z) - Tt[idx]) ** 2).mean()

    steps = s.ae_steps if previous is None else max(1, s.ae_steps // 3)
    loss = _adam([raw, *dec.parameters()], steps, s.lr, loss_fn, gen, len(X), s.batch)
    C = rows().detach().numpy().reshape(M, 2, D + 1)
    return C, w_scale, _layers(dec), ghat_scale, loss


class _Closure(nn.Module):
    """Torch twin of Member.mu (same maths, differentiable)."""

    def __init__(self, member: Member, hidden, gen):
        super().__init__()
        M, n = member.n_moments, member.n
        self.net = _mlp(M, hidden, 2 * n, gen)
        self.n = n
        self.linear = member.linear
        self.w_eq = torch.as_tensor(member.w_eq)
        self.w_scale = torch.as_tensor(member.w_scale)
        self.mu_scale = torch.as_tensor(member.mu_scale).reshape(-1)
        self.A = torch.as_tensor(member._A)
        self.P = torch.as_tensor(member._P)
        self.e0 = torch.as_tensor(mom.equilibrium(n).reshape(-1))
        self.cv = torch.as_tensor(mom.CONSTRAINT_VALUES)

    def at_zero(self):
        """(net(0) [out], net'(0) [out, in]) through the tanh layers (differentiable)."""
        lin = [m for m in self.net if isinstance(m, nn.Linear)]
        h = torch.zeros(lin[0].in_features, dtype=torch.float64)
        J = torch.eye(lin[0].in_features, dtype=torch.float64)
        for m in lin[:-1]:
            h = torch.tanh(m(h))
            J = (1.0 - h * h)[:, None] * (m.weight @ J)
        return lin[-1](h), lin[-1].weight @ J

    def forward(self, w):
        z = (w - self.w_eq) / self.w_scale
        v0, J0 = self.at_zero()
        if self.linear:
            J0 = torch.zeros_like(J0)
        d = (self.net(z) - v0 - z @ J0.T) * self.mu_scale
        mu = self.e0 + d
        b = torch.cat([self.cv.expand(len(w), 3), w], dim=1)
        r = mu @ self.A.T - b
        return mu - r @ self.P.T


def system_matrix(model: "_Closure", w: torch.Tensor, fun: torch.Tensor, h: float = 1e-4) -> torch.Tensor:
    """A [N, 3 + M, 3 + M] of the moment system at rho = 1, u = 0, T = 1 and moments w [N, M]
    (differentiable twin of :func:`conlearn.kinetic.hyperbolic.system_matrix`); fun [6M, 2n]:
    the member's functionals (a, A0, A1, A2, B0, B1) on mu. da/dw by central differences in w."""
    N, M = w.shape
    k = 3 + M
    t = (model(w) @ fun.T).reshape(N, 6, M)
    a = t[:, 0]
    E = torch.eye(M, dtype=w.dtype) * h
    ap = (model((w[:, None] + E).reshape(-1, M)) @ fun[:M].T).reshape(N, M, M)
    am = (model((w[:, None] - E).reshape(-1, M)) @ fun[:M].T).reshape(N, M, M)
    J = ((ap - am) / (2 * h)).transpose(1, 2)                      # [N, eq, var]
    w0, w1 = w[:, 0], w[:, 1]
    zero, one = torch.zeros_like(w0), torch.ones_like(w0)
    dQ = torch.zeros(N, k, k, dtype=w.dtype)
    dQ[:, 0, 0], dQ[:, 1, 1], dQ[:, 2, 0], dQ[:, 2, 2] = 1.0, 1.0, 1.5, 1.5
    dQ[:, 3:, 0] = w
    dQ[:, 3:, 3:] = torch.eye(M, dtype=w.dtype)
    rows = [torch.stack([zero, one, zero, zero, zero], -1),
            torch.stack([1 + w0, zero, 1 + w0, one, zero], -1),
            torch.stack([w1, 2.5 + w0, 1.5 * w1, zero, one], -1)]
    top = torch.cat([torch.stack(rows, 1), torch.zeros(N, 3, M - 2, dtype=w.dtype)], -1)     # [N, 3, k]
    bottom = torch.cat([a[..., None], w[..., None], 0.5 * a[..., None], J], -1)              # [N, M, k]
    dF = torch.cat([top, bottom], 1)
    # production per unit gradient of each variable (as hyperbolic.system_matrix)
    cols = []
    for j in range(k):
        du, dT = float(j == 1), float(j == 2)
        dps = (1.0 + w0) * (float(j == 0) + dT) + float(j == 3)
        dq = w1 * (float(j == 0) + 1.5 * dT) + float(j == 4)
        DT = -(2.0 / 3.0) * ((1.0 + w0) * du + dq)
        cols.append(-((-dps)[:, None] * t[:, 1] + (du + 0.5 * DT)[:, None] * t[:, 2] + 0.5 * dT * t[:, 3]
                      + DT[:, None] * t[:, 4] + dT * t[:, 5]))
    B = torch.cat([torch.zeros(N, 3, k, dtype=w.dtype), torch.stack(cols, -1)], 1)
    return torch.linalg.solve(dQ, dF - B)


def hyperbolicity_penalty(model: "_Closure", w: torch.Tensor, fun: torch.Tensor) -> torch.Tensor:
    """Mean over the states w [N, M] of the summed squared imaginary parts of the normalised
    characteristic speeds (0 where the system is hyperbolic)."""
    lam = torch.linalg.eigvals(system_matrix(model, w, fun))
    return (lam.imag ** 2).sum(1).mean()


def trust_range(w: np.ndarray, q: float = 0.0, margin: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) [M]: the range of the moments w [N, M] of the training cells where the closure is
    used (the solver clips its input to it): per moment, the q and 1 - q quantiles widened by
    ``margin`` times their span, within the min/max range widened by 0.1 of its span (q = 0:
    that range). With q > 0 the rare extreme cells (hot/cold mixtures near contacts: heavy tails
    in the higher moments) do not stretch the range over states the closure barely saw; measured
    on the benchmark, q = 0.02 removes its failures near continuum (docs/kinetic.md)."""
    if not 0.0 <= q < 0.5:
        raise ValueError(f"trust_quantile: must be in [0, 0.5), got {q!r}")
    span = w.max(0) - w.min(0)
    lo, hi = w.min(0) - 0.1 * span, w.max(0) + 0.1 * span
    if q == 0.0:
        return lo, hi
    a, b = np.quantile(w, [q, 1.0 - q], axis=0)
    return np.maximum(a - margin * (b - a), lo), np.minimum(b + margin * (b - a), hi)


def train_member(data, s: TrainSettings, seed: int, previous: Member | None = None) -> tuple[Member, dict]:
    """One member trained on a bootstrap resample of every cell of ``data`` (payload list)."""
    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    rng = np.random.default_rng(seed)
    mu_all, ghat_all = stack(data, "mu"), stack(data, "ghat")
    n_need = s.degree + 2
    if mu_all.shape[2] < n_need:
        raise ValueError(f"data carry Hermite moments up to degree {mu_all.shape[2] - 1}, "
                         f"the closure needs {n_need - 1}")
    mu_all = mu_all[:, :, :n_need]
    pick = rng.integers(0, len(mu_all), len(mu_all))
    mu, ghat = mu_all[pick], ghat_all[pick]
    C, w_scale, decoder, ghat_scale, ae_loss = train_autoencoder(mu, ghat, s, gen, previous)
    L = mom.functionals(C, n_need)
    w = mom.apply(L["w"], mu)
    dev = (mu - mom.equilibrium(n_need)).reshape(len(mu), -1)
    mu_scale = np.maximum(dev.std(0), 1e-3).reshape(2, n_need)
    w_lo, w_hi = trust_range(w, s.trust_quantile, s.trust_margin)
    proto = Member(C=C, w_scale=w_scale, w_lo=w_lo, w_hi=w_hi,
                   mu_scale=mu_scale, closure=_layers(_mlp(C.shape[0], s.hidden, 2 * n_need, gen)),
                   decoder=decoder, ghat_scale=ghat_scale, linear=s.linear)
    model = _Closure(proto, s.hidden, gen)
    warm = previous is not None and _load_layers(model.net, previous.closure)
    wt, mut = torch.as_tensor(w), torch.as_tensor(mu.reshape(len(mu), -1))
    scale = model.mu_scale
    fun = torch.as_tensor(proto._stack.reshape(len(proto._stack), -1))

    def loss_fn(idx):
        loss = (((model(wt[idx]) - mut[idx]) / scale) ** 2).mean()
        if s.hyperbolic > 0:
            loss = loss + s.hyperbolic * hyperbolicity_penalty(model, wt[idx[:s.hyperbolic_batch]], fun)
        return loss

    loss = _adam(list(model.net.parameters()), s.reuse_steps if warm else s.steps, s.lr, loss_fn, gen, len(w), s.batch)
    with torch.no_grad():
        full = float((((model(wt) - mut) / scale) ** 2).mean())
        sub = wt[torch.randperm(len(wt), generator=gen)[:512]]
        lam = torch.linalg.eigvals(system_matrix(model, sub, fun))
        complex_fraction = float((lam.imag.abs().amax(1) > 1e-6).double().mean())
    member = Member(C=C, w_scale=w_scale, w_lo=proto.w_lo, w_hi=proto.w_hi, mu_scale=mu_scale,
                    closure=_layers(model.net), decoder=decoder, ghat_scale=ghat_scale, linear=s.linear)
    return member, {"ae_loss": ae_loss, "closure_loss": loss, "closure_mse": full, "n_cells": int(len(mu)),
                    "warm": bool(warm), "complex_fraction": complex_fraction}
