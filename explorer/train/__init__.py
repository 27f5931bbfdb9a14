"""Training as a stepper, snapshot recorders, multi-seed training, safe checkpoints, run
directories on disk, and the sources of snapshots every lab follows.

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
from explorer.train.runs import Run, RunWriter
from explorer.train.seeds import MultiSeedTrainer, seed_models
from explorer.train.sources import ModelSource, RecorderSource, Source, as_source
from explorer.train.state import TrainingDiverged
from explorer.train.trainer import Trainer, build_seeded

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "ModelSource",
    "MultiSeedTrainer",
    "Probe",
    "Recorder",
    "RecorderSource",
    "Run",
    "RunWriter",
    "Snapshot",
    "Source",
    "TaskLike",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "as_source",
    "build_seeded",
    "default_probe",
    "load_checkpoint",
    "save_checkpoint",
    "seed_models",
]
