"""Training windows through a DataLoader, as ``dnadiff train`` reads them: tokens/s per
worker, and the headroom over what training consumes."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

from torch.utils.data import DataLoader

from dnadiff.data.prepare import prepare_genome
from dnadiff.data.prepared import PreparedData
from dnadiff.data.windows import RandomWindows
from dnadiff.perf.common import machine_name, peak_memory
from dnadiff.perf.tokens import synthetic_fasta


def bench_loader(data=None, fasta=None, window: int = 1024, batch: int = 64,
                 batches: int = 50, workers=(0, 1, 2), seed: int = 0,
                 megabases: float = 4.0, consumer_tokens_per_second: float | None = None
                 ) -> dict:
    """Training windows (``RandomWindows`` of the train split, as ``dnadiff train`` reads
    them) through a ``DataLoader`` with each number of ``workers``: tokens/s over ``batches``
    batches after the first (worker start-up excluded), and per worker (0 workers: the main
    process does the work). ``data`` is a prepared directory; else ``fasta`` (or a synthetic
    genome) is prepared into a scratch directory first. ``consumer_tokens_per_second`` (e.g.
    ``bench train``'s figure on the GPU) adds the loader's headroom over it."""
    logging.getLogger("dnadiff.data.prepare").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="dnadiff-bench-") as tmp:
        if data is None:
            src = fasta or synthetic_fasta(Path(tmp) / "genome.fa", megabases, seed)
            data = Path(tmp) / "prepared"
            prepare_genome(src, data)
            source = str(fasta) if fasta else f"synthetic, {megabases:g} Mb (seed {seed})"
        else:
            source = str(data)
        genome = PreparedData(data)
        ds = RandomWindows(genome, "train", window, (batches + 1) * batch, seed=seed)
        rows = []
        for w in workers:
            dl = DataLoader(ds, batch_size=batch, shuffle=False, num_workers=w, drop_last=True)
            it = iter(dl)
            next(it)  # workers started, first batch out
            t0 = time.perf_counter()
            n = sum(b["tokens"].numel() for b in it)
            dt = time.perf_counter() - t0
            row = {"workers": w, "batches": n // (batch * window),
                   "tokens_per_second": round(n / dt, 1),
                   "tokens_per_second_per_worker": round(n / dt / max(w, 1), 1)}
            if consumer_tokens_per_second:
                row["headroom_over_consumer"] = round(n / dt / consumer_tokens_per_second, 2)
            rows.append(row)
            del it, dl
    out = {"figure": "loader", "source": source, "window": window, "batch": batch,
           "machine": machine_name(), "cpus": os.cpu_count(), "loaders": rows}
    if consumer_tokens_per_second:
        out["consumer_tokens_per_second"] = consumer_tokens_per_second
    out.update(peak_memory())
    return out
