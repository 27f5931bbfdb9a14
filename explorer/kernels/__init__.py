"""Numba kernels: pure functions on arrays, no classes. Public API lives in explorer.analysis."""
