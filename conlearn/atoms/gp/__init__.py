"""On-the-fly Bayesian force field: a FLARE-style Gaussian process over 2- and 3-body
clusters of local environments (Vandermause et al., npj Comput. Mater. 6, 20 (2020)).

``environment`` builds the clusters, ``kernels`` the covariances between force / energy
labels with analytic derivatives, ``gp`` the full model, ``sparse`` its DTC sparse form
with local-energy inducing points (FLARE's SGP) for large training sets, ``mapping`` the
spline map of either's mean, ``calculator`` the ASE adapters.
"""

from .calculator import GPCalculator, MappedGPCalculator
from .environment import Environments, atoms_environments, environments
from .gp import GaussianProcess
from .kernels import NBodyKernel, kernel_matrix
from .mapping import MappedGP, map_gp
from .sparse import SparseGP

__all__ = ["Environments", "GPCalculator", "GaussianProcess", "MappedGP",
           "MappedGPCalculator", "NBodyKernel", "SparseGP", "atoms_environments",
           "environments", "kernel_matrix", "map_gp"]
