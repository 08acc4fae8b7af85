"""On-the-fly Bayesian force field: a FLARE-style Gaussian process over 2- and 3-body
clusters of local environments (Vandermause et al., npj Comput. Mater. 6, 20 (2020)).

``environment`` builds the clusters, ``kernels`` the covariances between force / energy
labels with analytic derivatives, ``gp`` the model, ``calculator`` the ASE adapter.
"""

from .environment import Environments, atoms_environments, environments
from .gp import GaussianProcess
from .kernels import NBodyKernel, kernel_matrix

__all__ = ["Environments", "GaussianProcess", "NBodyKernel", "atoms_environments",
           "environments", "kernel_matrix"]
