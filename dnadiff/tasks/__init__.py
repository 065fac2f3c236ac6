"""Labeled DNA classification tasks read into one in-memory type.

``load_task(spec)`` reads a task described by a dict (a config's ``downstream.tasks`` item,
made a spec by ``task_spec``) and returns a ``LabeledTask``: class names plus train /
validation / test ``LabeledSet`` s of uint8 token ids (A0 C1 G2 T3 N4, see
``dnadiff.tokenizers``). One module per type
(``gue``, ``genomic_benchmarks``, ``coordinates``, ``fasta_pair``, ``annotation``); ``READERS``
(``registry``) maps each type to its reader and keys; ``base`` holds what they share.
"""

from dnadiff.tasks.base import (
    LabeledSet,
    LabeledTask,
    split_validation,
    stratified_split,
    task_summary,
)
from dnadiff.tasks.registry import COMMON_KEYS, READERS, load_task, task_keys, task_spec

__all__ = ["COMMON_KEYS", "READERS", "LabeledSet", "LabeledTask", "load_task",
           "split_validation", "stratified_split", "task_keys", "task_spec", "task_summary"]
