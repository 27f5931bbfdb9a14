"""Training as a stepper, snapshot recorders, multi-seed training and safe checkpoints.

::

    trainer = Trainer(lambda: MLP(MLPConfig(...)), make_task("spirals"), lr=1e-2)
    recorder = Recorder(trainer, every=10)
    for metrics in trainer.run(500):
        recorder.maybe_record()
"""

from __future__ import annotations

from explorer.train.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from explorer.train.config import TaskLike, TrainConfig
from explorer.train.probes import Probe, default_probe
from explorer.train.recorders import Recorder, Snapshot
from explorer.train.seeds import MultiSeedTrainer
from explorer.train.state import TrainingDiverged
from explorer.train.trainer import Trainer, build_seeded

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "MultiSeedTrainer",
    "Probe",
    "Recorder",
    "Snapshot",
    "TaskLike",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "build_seeded",
    "default_probe",
    "load_checkpoint",
    "save_checkpoint",
]
