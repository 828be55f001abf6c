"""Megatron indexed datasets, GPT-NeoX index mapping, prepare, replay, find."""
