"""A reference genome by URL: served from a loopback HTTP server (no network needed)."""

import functools
import gzip
import http.server
import threading

import pytest

from dnadiff.data.reference import fetch_reference
from dnadiff.errors import DnadiffError

FASTA = ">ctgA first\nACGTACGTNNACGT\nacgtRYKM\n>ctgB\nGGGGCCCCAAAATTTT\n"


@pytest.fixture()
def http_dir(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_reference_from_url_gz(http_dir, tmp_path):
    root, base = http_dir
    (root / "genome.fa.gz").write_bytes(gzip.compress(FASTA.encode()))
    out = fetch_reference(f"{base}/genome.fa.gz", tmp_path / "ref", tmp_path / "cache")
    assert (tmp_path / "cache" / "genome.fa.gz").exists()  # the download is kept
    text = (tmp_path / "ref" / "genome.fa").read_text()
    assert text.startswith(">ctgA\nACGTACGTNNACGTacgtRYKM\n>ctgB\n")
    fai = [line.split("\t") for line in open(out["fai"]).read().splitlines()]
    assert [(f[0], int(f[1])) for f in fai] == [("ctgA", 22), ("ctgB", 16)]


def test_fetch_reference_url_not_found_leaves_nothing(http_dir, tmp_path):
    _, base = http_dir
    with pytest.raises(DnadiffError, match="download failed"):
        fetch_reference(f"{base}/missing.fa", tmp_path / "ref", tmp_path / "cache")
    assert not (tmp_path / "ref" / "genome.fa").exists()
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(cache.iterdir())  # no partial download
