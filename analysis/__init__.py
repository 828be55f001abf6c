"""Memorization, term frequency, gender bias, evaluation across checkpoints, plots."""
