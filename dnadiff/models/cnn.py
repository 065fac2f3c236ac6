"""The CNN baseline of the Genomic Benchmarks papers (Gresova et al. 2023; their
``genomic_benchmarks.models.torch.CNN``): a learned embedding (100 channels), three
convolutions (16, 8 and 4 filters of width 8, batch norm, max-pooling by 2; ReLU after the
first), a dense layer of 512 and the output. Here with one output per class and cross-entropy
(theirs: one sigmoid output for two classes), trained by the same loop as the other
classifiers, and taking the same (right-padded tokens, mask) input.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from dnadiff.tokenizers import PAD_ID

#: the shortest input the three convolutions and poolings leave anything of
MIN_LENGTH = 57


class GenomicBenchmarksCNN(nn.Module):
    """The Genomic Benchmarks CNN for sequences of at most ``input_len`` tokens; shorter ones
    (and every sequence of a task shorter than :data:`MIN_LENGTH`) are padded with the padding
    token, as their loader pads variable-length datasets."""

    def __init__(self, vocab_size: int, input_len: int, num_classes: int,
                 embedding_dim: int = 100):
        super().__init__()
        self.input_len = input_len = max(input_len, MIN_LENGTH)
        self.embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.cnn = nn.Sequential(
            nn.Conv1d(embedding_dim, 16, kernel_size=8), nn.BatchNorm1d(16), nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(16, 8, kernel_size=8), nn.BatchNorm1d(8), nn.MaxPool1d(2),
            nn.Conv1d(8, 4, kernel_size=8), nn.BatchNorm1d(4), nn.MaxPool1d(2),
            nn.Flatten())
        with torch.no_grad():
            self.cnn.eval()  # batch norm takes a batch of one only in eval mode
            width = self.cnn(self.embeddings(torch.zeros(1, input_len, dtype=torch.long))
                             .transpose(1, 2)).shape[1]
            self.cnn.train()
        self.dense = nn.Sequential(nn.Linear(width, 512), nn.Linear(512, num_classes))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits [B, classes] of right-padded ``tokens`` (padded to ``input_len``)."""
        if tokens.shape[1] > self.input_len:
            raise ValueError(f"sequences of {tokens.shape[1]} tokens are longer than this "
                             f"CNN's input ({self.input_len})")
        if tokens.shape[1] < self.input_len:
            tokens = nn.functional.pad(tokens, (0, self.input_len - tokens.shape[1]),
                                       value=PAD_ID)
        return self.dense(self.cnn(self.embeddings(tokens).transpose(1, 2)))
