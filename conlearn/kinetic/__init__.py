"""Kinetic gas dynamics (BGK) domain: kinetic solver, baselines and the ML moment closure."""
