"""Training as a stepper, snapshot recorders and safe checkpoints."""
