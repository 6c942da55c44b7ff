"""One training engine for every model: loop, checkpoints, logging, torchrun."""
