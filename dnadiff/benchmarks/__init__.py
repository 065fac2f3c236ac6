"""Labeled DNA classification benchmarks."""
