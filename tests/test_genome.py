"""Windows, reverse complement, the windows BED and the synthetic genome."""

import random
import re

import numpy as np
import pandas as pd
import pyfaidx
import pytest
from Bio.Seq import Seq

from gta import GTAError
from gta import genome as G
from gta.demo import genome as demo_genome


@pytest.fixture(scope="module")
def fasta(tmp_path_factory):
    """Two chromosomes of known random sequence (mixed case, some N), 70-column lines."""
    rng = random.Random(7)
    seqs = {
        "chrA": "".join(rng.choice("ACGTacgtN") for _ in range(50_003)),
        "chrB": "".join(rng.choice("ACGT") for _ in range(9_001)),
    }
    path = tmp_path_factory.mktemp("fa") / "toy.fa"
    with open(path, "w") as fh:
        for name, s in seqs.items():
            fh.write(f">{name}\n" + "\n".join(s[i : i + 70] for i in range(0, len(s), 70)) + "\n")
    return path, seqs


def expected_window(seq, tss, n_bins, bin_size):
    """Independent: pad the chromosome with N on both sides, then slice."""
    start = tss - (n_bins // 2) * bin_size - bin_size // 2
    pad = n_bins * bin_size
    padded = "N" * pad + seq.upper() + "N" * pad
    return padded[start + pad : start + pad + n_bins * bin_size]


@pytest.mark.parametrize("n_bins,bin_size", [(1, 4096), (3, 1000), (5, 4096), (11, 128), (251, 64)])
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_window_coordinates(fasta, n_bins, bin_size, where):
    path, seqs = fasta
    seq = seqs["chrA"]
    tss = {"start": 5, "middle": len(seq) // 2, "end": len(seq) - 3}[where]
    win = G.extract_window(path, "chrA", tss, n_bins, bin_size)
    assert len(win) == n_bins * bin_size
    assert win == expected_window(seq, tss, n_bins, bin_size)
    # the TSS base sits at offset bin_size//2 of the middle bin
    assert win[(n_bins // 2) * bin_size + bin_size // 2] == seq[tss].upper()
    assert win == win.upper()


def test_window_past_both_ends_is_padded(fasta):
    path, seqs = fasta
    win = G.extract_window(path, "chrB", 4000, 5, 4096)  # 20 kb window on a 9 kb chromosome
    start = 4000 - 2 * 4096 - 2048
    assert win[:-start] == "N" * -start
    assert win[-start : -start + 9001] == seqs["chrB"]
    assert set(win[-start + 9001 :]) == {"N"}


@pytest.mark.parametrize("start,end", [(-9000, -4000), (-4096, 0), (-5, 3), (9_001, 9_100), (12_000, 16_096), (0, 0)])
def test_read_padded_ranges_outside_the_chromosome(fasta, start, end):
    """Ranges wholly before the start or past the end (the first bins of a 1-Mb window near a chromosome
    start) are end - start Ns; against slicing a chromosome padded with N by hand."""
    path, seqs = fasta
    pad = 20_000
    padded = "N" * pad + seqs["chrB"].upper() + "N" * pad
    got = G.read_padded(G.open_fasta(path), "chrB", start, end)
    assert len(got) == end - start
    assert got == padded[start + pad : end + pad]


def test_reverse_complement_and_transcript_orientation(fasta):
    path, seqs = fasta
    s = "ACGTNacgtnRYKMSWBDHV"
    assert G.reverse_complement(s) == str(Seq(s).reverse_complement())
    fwd = G.extract_window(path, "chrA", 20_000, 3, 1000, strand="-")
    rev = G.extract_window(path, "chrA", 20_000, 3, 1000, strand="-", orient="transcript")
    plus = G.extract_window(path, "chrA", 20_000, 3, 1000, strand="+", orient="transcript")
    assert rev == str(Seq(fwd).reverse_complement())
    assert plus == fwd  # plus-strand genes are never flipped
    with pytest.raises(GTAError, match="orientation must be one of .*'sideways'") as e:
        G.extract_window(path, "chrA", 20_000, 3, 1000, orient="sideways")
    assert e.value.input == "orient"


def test_open_fasta_object_and_bad_chromosome(fasta):
    path, seqs = fasta
    fa = G.open_fasta(path)
    assert G.extract_window(fa, "chrB", 100, 1, 50) == seqs["chrB"][75:125]
    with pytest.raises(GTAError, match="chrZ"):
        G.extract_window(fa, "chrZ", 100, 1, 50)
    with pytest.raises(GTAError, match="not found"):
        G.extract_window(path.parent / "missing.fa", "chrA", 100, 1, 50)


def test_genome_grid_snaps_windows():
    bs = 4096
    for tss in [0, 4095, 4096, 123_456, 10 * bs + bs // 2]:
        start = G.window_start(tss, 5, bs, "genome")
        assert start % bs == 0
        assert start + 2 * bs <= tss < start + 3 * bs  # the middle bin holds the TSS
    # a TSS at the centre of a grid bin gives the same window either way
    tss = 37 * bs + bs // 2
    assert G.window_start(tss, 7, bs, "genome") == G.window_start(tss, 7, bs, "tss")


def test_windows_bed12(fasta, tmp_path):
    path, seqs = fasta
    genes = pd.DataFrame(
        {
            "gene_id": [1, 2],
            "symbol": ["NEAR_START", "MID"],
            "chrom": ["chrA", "chrA"],
            "tss": [100, 25_000],
            "strand": ["+", "-"],
        }
    )
    out = tmp_path / "w.bed"
    assert G.write_windows_bed(genes, path, out, n_bins=5, bin_size=1000) == 2
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    near, mid = rows  # sorted by start
    # NEAR_START: window [-2400, 2600) clipped to [0, 2600): bins 0-1 dropped, the TSS bin
    # [-400, 600) clipped to [0, 600), bins 3-4 whole
    assert near[:3] == ["chrA", "0", "2600"] and near[3] == "NEAR_START|1"
    assert near[9] == "3" and near[10] == "600,1000,1000" and near[11] == "0,600,1600"
    assert (near[6], near[7]) == ("0", "600")  # thick = the (clipped) TSS bin
    s = 25_000 - 2500
    assert mid[1:3] == [str(s), str(s + 5000)] and mid[5] == "-"
    assert mid[10] == ",".join(["1000"] * 5) and mid[11] == "0,1000,2000,3000,4000"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    d = tmp_path_factory.mktemp("syn")
    tss = {"chr21": np.array([20_000_000, 30_000_123, 40_500_000])}
    demo_genome.write_synthetic_genome(d / "a.fa", ["chr21"], tss, seed=3)
    demo_genome.write_synthetic_genome(d / "b.fa", ["chr21"], tss, seed=3)
    demo_genome.write_synthetic_genome(d / "c.fa", ["chr21"], tss, seed=4)
    return d, tss["chr21"]


def test_synthetic_genome_is_deterministic_and_indexed(synthetic):
    d, _ = synthetic
    assert (d / "a.fa").read_bytes() == (d / "b.fa").read_bytes()
    assert (d / "a.fa").read_bytes() != (d / "c.fa").read_bytes()
    fa = pyfaidx.Fasta(str(d / "a.fa"))  # uses our .fai; pyfaidx checks line lengths on access
    assert len(fa["chr21"]) == demo_genome.GRCH38_LENGTHS["21"]
    fai = (d / "a.fa.fai").read_text().split()
    assert fai[:2] == ["chr21", "46709983"] and fai[3:] == ["60", "61"]
    # the last bases read back through the index match the file's tail
    tail = (d / "a.fa").read_bytes().rstrip(b"\n").split(b"\n")[-1].decode()
    assert str(fa["chr21"][-len(tail) :]) == tail


def test_synthetic_genome_is_heterogeneous(synthetic):
    d, tss = synthetic
    fa = pyfaidx.Fasta(str(d / "a.fa"))
    chrom = fa["chr21"]
    seq = str(chrom[:])
    assert seq.startswith("N" * 10_000) and seq.endswith("N" * 10_000)
    assert max(len(m) for m in re.findall("N+", seq)) > 1_000_000  # acrocentric short arm
    lower = sum(c.islower() for c in seq[20_000_000:22_000_000]) / 2e6
    assert 0.05 < lower < 0.6  # soft-masked repeats
    # GC varies between 100-kb stretches (isochores), well beyond binomial noise
    gcs = []
    for s in range(15_000_000, 45_000_000, 500_000):
        w = seq[s : s + 100_000].upper()
        acgt = sum(w.count(b) for b in "ACGT")
        if acgt > 90_000:
            gcs.append((w.count("G") + w.count("C")) / acgt)
    assert max(gcs) - min(gcs) > 0.08

    # CpG islands at the TSSs: CpG observed/expected far above the bulk genome's
    def cpg_oe(w):
        w = w.upper()
        c, g = w.count("C"), w.count("G")
        return w.count("CG") * len(w) / max(c * g, 1)

    for t in tss:
        assert cpg_oe(seq[t - 300 : t + 250]) > 0.9
        assert "N" not in seq[t - 20_000 : t + 20_000]  # no assembly gap over a gene
    assert cpg_oe(seq[25_000_000:26_000_000]) < 0.5  # CpG depletion outside islands, as in real DNA


def test_synthetic_genome_rejects_unknown_chromosome(tmp_path):
    with pytest.raises(GTAError, match="chrUn"):
        demo_genome.write_synthetic_genome(tmp_path / "x.fa", ["chrUn"], {})
    assert not list(tmp_path.iterdir())
