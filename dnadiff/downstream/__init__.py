"""Downstream classification: is the pretrained model useful?

For one labeled task (``dnadiff.tasks``) these methods, scored on the task's test split
with accuracy, Matthews correlation (MCC) and AUROC:

- ``finetune``: the pretrained backbone plus a mean-pooled linear head, all weights trained;
  model selection on validation accuracy; several seeds (mean and range reported).
- ``probe``: logistic regression (scikit-learn) on the frozen, mean-pooled pretrained features.
- ``kmer``: logistic regression on k-mer counts, the k-mer sizes (each k, or 1..k), the
  feature scaling (none, L2-normalised or standardised) and C chosen together on validation;
  reported beside it, ``kmer_one_k``: the best single k in 3..6 alone (the plain baseline
  papers use), its scaling and C chosen the same way.
- ``scratch``: the same architecture as ``finetune`` from random weights, at its own lr.
- ``cnn``: the CNN of the Genomic Benchmarks papers (``dnadiff.models.cnn``).

The trained ones (finetune, scratch, cnn) run one loop (:func:`fit_classifier`: AdamW with
weight decay on weight matrices only, warmup and cosine decay, gradient clipping, the best
validation evaluation kept) under a *protocol* (``downstream.protocol``, see
:func:`recipe`): ``quick`` (the finetune section as written), ``genomic-benchmarks`` or ``gue``
(the published protocols). The best fine-tuned model is kept as the *oracle* classifier (a
``dnadiff-classifier`` checkpoint) that scores class-conditional samples.

The classifier itself (``SequenceClassifier``, ``predict_proba``, ``embed``, ``pad_batch``) is
in ``dnadiff.models.classifier``, its checkpoint format in ``dnadiff.checkpoint``.
"""

from dnadiff.downstream.baselines import C_GRID, ONE_K, fit_kmer, fit_logistic, kmer_matrix
from dnadiff.downstream.fit import (
    classification_metrics,
    fit_classifier,
    lr_factor,
    param_groups,
    recipe,
    train_classifier,
)
from dnadiff.downstream.run import (
    METHODS,
    SUMMARY_COLUMNS,
    collect_results,
    read_result,
    run_task,
)

__all__ = ["C_GRID", "METHODS", "ONE_K", "SUMMARY_COLUMNS", "classification_metrics",
           "collect_results", "fit_classifier", "fit_kmer", "fit_logistic", "kmer_matrix",
           "lr_factor", "param_groups", "read_result", "recipe", "run_task",
           "train_classifier"]
