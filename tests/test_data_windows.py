"""``PreparedData`` and the window data sets: valid starts (also with BED segments), random
windows (no N, deterministic, reverse complement) and tiled windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_kit import BED, CHR_A, CHR_C, hand_ids

from dnadiff.data.prepare import prepare_genome
from dnadiff.data.prepared import PreparedData
from dnadiff.data.windows import RandomWindows, TiledWindows
from dnadiff.errors import DnadiffError, InputFileError

# -- PreparedData ---------------------------------------------------------------------------

def test_prepared_genome_not_a_directory(tmp_path):
    with pytest.raises(InputFileError, match="no index.json"):
        PreparedData(tmp_path)
    (tmp_path / "index.json").write_text("{broken")
    with pytest.raises(InputFileError, match="corrupt JSON"):
        PreparedData(tmp_path)


def test_valid_starts(prepared):
    out, _ = prepared
    g = PreparedData(out)
    assert g.segments("train") == [(0, 0, 200)]
    assert g.valid_starts("train", 16).tolist() == [[0, 0, 35], [0, 60, 105], [0, 131, 185]]
    # window 60: [60, 120) gives exactly one start, [131, 200) (69 bases) gives ten
    assert g.valid_starts("train", 60).tolist() == [[0, 60, 61], [0, 131, 141]]
    assert g.valid_starts("train", 69).tolist() == [[0, 131, 132]]
    assert g.valid_starts("train", 70).shape == (0, 3)
    assert g.valid_starts("test", 16).tolist() == [[2, 5, 60]]


def test_valid_starts_with_bed_segments(tmp_path, genome_fa):
    bed = tmp_path / "s.bed"
    bed.write_text(BED)
    prepare_genome(genome_fa, tmp_path / "prep", split_bed=bed)
    g = PreparedData(tmp_path / "prep")
    # train segments of chrA: [0,20) [40,100) [150,200); N runs at 50..60, 120..125, 130..131
    assert g.valid_starts("train", 16).tolist() == [
        [0, 0, 5], [0, 60, 85], [0, 150, 185], [1, 10, 85], [2, 5, 60]]
    # test: chrA [100,150) has N at 120..125 and 130..131; chrB [0,10) is too short
    assert g.valid_starts("test", 16).tolist() == [[0, 100, 105], [0, 131, 135]]
    assert g.valid_starts("test", 19).tolist() == [[0, 100, 102], [0, 131, 132]]
    assert g.valid_starts("test", 21).shape == (0, 3)
    assert g.valid_starts("validation", 20).tolist() == [[0, 20, 21]]


def window_starts(ds):
    return [ds.locate(i)[:2] for i in range(len(ds))]


def test_random_windows_never_contain_n_and_cover_all_starts(prepared, tok):
    out, _ = prepared
    g = PreparedData(out)
    ds = RandomWindows(g, "train", 16, 4000, seed=3)
    assert len(ds) == 4000 and ds.n_positions == 35 + 45 + 54
    valid = set(range(0, 35)) | set(range(60, 105)) | set(range(131, 185))
    seen = set()
    full = np.array(hand_ids(CHR_A))
    for i in range(len(ds)):
        item = ds[i]
        ci, start, rc = ds.locate(i)
        assert ci == 0 and not rc
        assert start in valid
        seen.add(start)
        x = item["tokens"]
        assert x.dtype == torch.long and x.shape == (16,)
        assert not (x == tok.n_id).any()
        assert x.tolist() == full[start:start + 16].tolist()
        assert item["loss_mask"].dtype == torch.bool and item["loss_mask"].all()
    assert seen == valid  # uniform over every N-free window start


def test_random_windows_deterministic(prepared):
    out, _ = prepared
    g = PreparedData(out)
    a = RandomWindows(g, "train", 16, 50, seed=1)
    b = RandomWindows(PreparedData(out), "train", 16, 50, seed=1)
    c = RandomWindows(g, "train", 16, 50, seed=2)
    assert window_starts(a) == window_starts(b)
    assert window_starts(a) != window_starts(c)
    for i in (0, 7, 49):
        assert torch.equal(a[i]["tokens"], b[i]["tokens"])
    # an item does not depend on the order of access
    assert torch.equal(a[7]["tokens"], RandomWindows(g, "train", 16, 50, seed=1)[7]["tokens"])


def test_random_windows_reverse_complement(prepared, tok):
    out, _ = prepared
    g = PreparedData(out)
    fwd = RandomWindows(g, "train", 16, 200, seed=4)
    rc = RandomWindows(g, "train", 16, 200, seed=4, complement=tok.complement, rc_prob=1.0)
    never = RandomWindows(g, "train", 16, 200, seed=4, complement=tok.complement, rc_prob=0.0)
    for i in range(200):
        assert fwd.locate(i)[:2] == rc.locate(i)[:2] == never.locate(i)[:2]
        assert rc.locate(i)[2] and not never.locate(i)[2]
        f = fwd[i]["tokens"].numpy()
        assert rc[i]["tokens"].tolist() == tok.reverse_complement(f).tolist()
        assert torch.equal(never[i]["tokens"], fwd[i]["tokens"])
    half = RandomWindows(g, "train", 16, 2000, seed=4, complement=tok.complement, rc_prob=0.5)
    frac = np.mean([half.locate(i)[2] for i in range(2000)])
    assert 0.45 < frac < 0.55


def test_random_windows_no_valid_window(prepared):
    out, _ = prepared
    with pytest.raises(DnadiffError, match="no window of 100 bases without N"):
        RandomWindows(PreparedData(out), "train", 100, 10)


@pytest.mark.parametrize("window", [16, 24, 80, 100])
def test_tiled_windows_cover_split_once(prepared, tok, window):
    out, _ = prepared
    g = PreparedData(out)
    ds = TiledWindows(g, "test", window)
    n_tiles = -(-80 // window)
    assert len(ds) == n_tiles
    pieces = []
    for i in range(len(ds)):
        item = ds[i]
        x, lm = item["tokens"], item["loss_mask"]
        assert x.shape == (window,) and lm.dtype == torch.bool
        assert torch.equal(lm, (x != tok.pad_id) & (x != tok.n_id))
        real = x[x != tok.pad_id]
        if i < len(ds) - 1:
            assert len(real) == window
        pieces.append(real)
    assert torch.cat(pieces).tolist() == hand_ids(CHR_C)
    last = ds[len(ds) - 1]["tokens"]
    tail = 80 - (n_tiles - 1) * window
    assert (last[tail:] == tok.pad_id).all() and (last[:tail] != tok.pad_id).all()
    # loss mask excludes exactly the N (10 of them) and the padding
    total_scored = sum(int(ds[i]["loss_mask"].sum()) for i in range(len(ds)))
    assert total_scored == 80 - 10


def test_tiled_windows_multi_segment_and_max_windows(tmp_path, genome_fa):
    bed = tmp_path / "s.bed"
    bed.write_text(BED)
    prepare_genome(genome_fa, tmp_path / "prep", split_bed=bed)
    g = PreparedData(tmp_path / "prep")
    ds = TiledWindows(g, "test", 16)
    # chrA [100,150) -> 100,116,132,148(2 bases); chrB [0,10) -> one padded tile
    assert ds.tiles == [(0, 100, 116), (0, 116, 132), (0, 132, 148), (0, 148, 150), (1, 0, 10)]
    sub = TiledWindows(g, "test", 16, max_windows=3)
    assert sub.tiles == [ds.tiles[0], ds.tiles[2], ds.tiles[4]]
    assert len(TiledWindows(g, "test", 16, max_windows=100)) == 5


def test_tiled_windows_empty_split(prepared, tmp_path, genome_fa):
    prepare_genome(genome_fa, tmp_path / "p2", [], [])
    with pytest.raises(DnadiffError, match="split is empty"):
        TiledWindows(PreparedData(tmp_path / "p2"), "test", 16)
