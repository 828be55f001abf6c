"""pythia-suite: family table, model, trainer, corpus + dedup, suite orchestration, CLI."""
