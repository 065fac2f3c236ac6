"""Speed figures (``dnadiff bench``), one module per figure, each printed as JSON with the
machine and the peak memory of its process:

- ``tokens``: FASTA -> token ids (our reader and the whole of ``prepare``) against the naive way;
- ``loader``: training windows through a DataLoader, tokens/s per worker;
- ``train_step``: whole training steps as ``dnadiff train`` runs them: tokens/s, model FLOPs,
  MFU;
- ``sampler``: the cached against the uncached ancestral sampler, with the exact expected
  forward passes;
- ``backbones``: forward + backward of each backbone at one size; on a GPU the pure-PyTorch
  scan against the mamba-ssm kernels;
- ``every``: all of them, each in its own process.
"""
