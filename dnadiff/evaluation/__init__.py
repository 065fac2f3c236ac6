"""Evaluation: held-out likelihood, scores of generated DNA and text, the discreteness analyses,
plots.

- ``kmers``: the one k-mer encoder (codes, counts, per-sequence frequencies) and JS divergence;
  ``composition``: entropy, GC, CpG o/e, homopolymers, tandem repeats; ``baselines``: i.i.d.
  and Markov sequences; ``two_sample``: discriminator AUROC, Frechet distance;
  ``memorization``: seed-based nearest-neighbour search; ``orfs`` and ``genes``: open frames,
  gene calls, codon periodicity.
- ``dna_scores``: the one scorer of generated DNA (``evaluate samples``, ``evaluate scores``,
  the marginal trap); ``text_scores``: generative perplexity and unigram entropy of text.
- ``likelihood``: held-out NELBO; ``masked_markov``: the masked objective's count reference;
  ``masking_rate``: the loss by masking rate; ``discreteness``: the Jin et al. masked-position
  probe and marginal trap; ``influence``: influence by distance (the ``probe`` verbs); ``plots``;
  ``compute_table``: the quality-against-compute table and its plot.
"""
