"""Public analysis API: pure functions (and a few estimators) from arrays to arrays or tidy frames.

Modules: ``attention``, ``spectra``, ``geometry``, ``alignment``; ``frames`` holds the tidy helpers.
"""
