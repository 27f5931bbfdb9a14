"""Entry point of a local sweep worker: ``python -m explorer.train.sweep._worker FD THREADS``."""

from __future__ import annotations

import sys

from explorer.train.sweep.local import worker_main

if __name__ == "__main__":
    worker_main(int(sys.argv[1]), int(sys.argv[2]))
