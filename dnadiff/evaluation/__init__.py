"""Evaluation: held-out likelihood, statistics of generated sequences, plots."""
