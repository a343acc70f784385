"""Reading a VCF (pysam), checking REF against the FASTA, placing variants in gene windows and
building ALT-haplotype bins (gta.variants)."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pysam
import pytest

from gta import GTAError
from gta import genome as G
from gta import variants as V

N_BINS, BIN = 5, 4096
LENGTHS = {"chr1": 40_000, "chr2": 30_000}


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    """Two chromosomes of seeded random bases (mixed case, a short run of N in chr2)."""
    rng = random.Random(11)
    seqs = {c: "".join(rng.choice("ACGTacgt") for _ in range(n)) for c, n in LENGTHS.items()}
    seqs["chr2"] = seqs["chr2"][:20_000] + "N" * 50 + seqs["chr2"][20_050:]
    path = tmp_path_factory.mktemp("fa") / "toy.fa"
    with open(path, "w") as fh:
        for name, s in seqs.items():
            fh.write(f">{name}\n" + "\n".join(s[i : i + 60] for i in range(0, len(s), 60)) + "\n")
    fa = G.open_fasta(path)
    return fa, {c: s.upper() for c, s in seqs.items()}


@pytest.fixture(scope="module")
def genes():
    # grid='genome', 5 bins: windows chr1 [0, 20480), chr1 [4096, 24576), chr2 [4096, 24576)
    return pd.DataFrame(
        {
            "gene_id": [101, 102, 201],
            "symbol": ["AAA", "BBB", "CCC"],
            "ensembl_gene": ["ENSG1", "ENSG2", "ENSG3"],
            "name": ["a", "b", "c"],
            "chrom": ["chr1", "chr1", "chr2"],
            "tss": [10_000, 14_000, 15_000],
            "strand": ["+", "-", "+"],
        }
    )


def other(base: str) -> str:
    return next(b for b in "ACGT" if b != base)


def write_vcf(path, lines):
    header = ["##fileformat=VCFv4.2"]
    header += [f"##contig=<ID={c},length={n}>" for c, n in LENGTHS.items()]
    header += [
        "##contig=<ID=1,length=40000>",
        "##contig=<ID=chr9,length=1000>",
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    path.write_text("\n".join(header + ["\t".join(map(str, r)) + "\t.\t.\t." for r in lines]) + "\n")
    return path


@pytest.fixture(scope="module")
def vcf(genome, tmp_path_factory):
    """The records the tests count: (CHROM, POS, ID, REF, ALT), REF from the FASTA unless a mismatch."""
    _, seq = genome
    s1 = seq["chr1"]
    lines = [
        ("chr1", 5001, "rs_snv", s1[5000], other(s1[5000])),  # SNV
        ("chr1", 6001, ".", s1[6000], s1[6000] + "TTT"),  # insertion of 3
        ("chr1", 7001, ".", s1[7000:7004], s1[7000]),  # deletion of 3
        ("chr1", 8001, "rs_multi", s1[8000], "A,C" if s1[8000] not in "AC" else "G,T"),  # 2 ALTs
        ("chr1", 9001, ".", s1[9000], "<DEL>"),  # symbolic
        ("chr1", 9501, ".", s1[9500], s1[9500] + "]chr2:1000]"),  # breakend
        ("chr1", 35001, ".", s1[35000], other(s1[35000])),  # outside every window
        ("chr1", 11001, "rs_bad", other(s1[11000]), s1[11000]),  # REF mismatch
        ("1", 12001, ".", s1[12000].lower(), other(s1[12000]).lower()),  # other naming, lower case
        ("chr2", 15001, ".", seq["chr2"][15000], other(seq["chr2"][15000])),  # chr2 SNV
        ("chr1", 13001, ".", s1[13000], f"{other(s1[13000])},*"),  # one ALT + spanning deletion
        ("chr1", 13501, ".", s1[13500], "."),  # no ALT
        ("chr1", 14001, ".", s1[14000], s1[14000]),  # ALT == REF, kept
        ("chr9", 100, ".", "A", "C"),  # chromosome not in the FASTA
    ]
    return write_vcf(tmp_path_factory.mktemp("vcf") / "calls.vcf", lines), lines


def test_match_chrom():
    ucsc = ["chr1", "chr2", "chrX", "chrM"]
    ens = ["1", "2", "X", "MT"]
    assert V.match_chrom("chr1", ucsc) == "chr1"
    assert V.match_chrom("1", ucsc) == "chr1"
    assert V.match_chrom("Chr2", ucsc) == "chr2"
    assert V.match_chrom("CHRX", ucsc) == "chrX"
    assert V.match_chrom("chr1", ens) == "1"
    assert V.match_chrom("chrX", ens) == "X"
    for mito in ("MT", "M", "chrM", "chrMT"):
        assert V.match_chrom(mito, ucsc) == "chrM"
        assert V.match_chrom(mito, ens) == "MT"
    assert V.match_chrom("chr3", ucsc) is None
    assert V.match_chrom("3", ens) is None
    assert V.match_chrom("chr1", ["chr1", "1"]) == "chr1"  # an exact name wins
    assert V.match_chrom("1", ["chr1", "1"]) == "1"


def test_variant_coordinates():
    v = V.Variant("chr1", 101, "x", "ACG", "A")
    assert (v.start0, v.end0) == (100, 103)
    ins = V.Variant("chr1", 101, "x", "A", "ATT")
    assert (ins.start0, ins.end0) == (100, 101)


def test_read_vcf_counts_splits_and_names(genome, vcf):
    fa, seq = genome
    path, lines = vcf
    variants, counts = V.read_vcf(path, list(fa.keys()))  # no fasta: REF not checked
    assert dict(counts) == {
        "records": 14,
        "multiallelic": 2,
        "variants": 11,
        "no_alt": 1,
        "no_ref": 0,
        "bad_ref": 0,
        "bad_alt": 0,
        "bad_pos": 0,
        "duplicate": 0,
        "unknown_chrom": 1,
        "symbolic": 1,
        "breakend": 1,
        "spanning_deletion": 1,
        "ref_mismatch": 0,
    }
    assert set(counts) == set(V.COUNTER_KEYS)
    assert len(variants) == 11
    by_pos = {}
    for v in variants:
        by_pos.setdefault(v.pos, []).append(v)
    # multi-allelic: one Variant per ALT, same REF and ID
    multi = by_pos[8001]
    assert [v.alt for v in multi] == lines[3][4].split(",")
    assert {v.id for v in multi} == {"rs_multi"} and {v.ref for v in multi} == {seq["chr1"][8000]}
    # '1' is chr1, alleles upper case, ID made from chrom:pos:ref>alt
    (v12,) = by_pos[12001]
    assert v12.chrom == "chr1" and v12.ref == seq["chr1"][12000] and v12.alt == other(seq["chr1"][12000])
    assert v12.id == f"chr1:12001:{v12.ref}>{v12.alt}"
    assert by_pos[5001][0].id == "rs_snv"
    assert [v.alt for v in by_pos[13001]] == [other(seq["chr1"][13000])]  # '*' dropped
    assert by_pos[14001][0].alt == by_pos[14001][0].ref  # ALT == REF kept
    assert by_pos[6001][0].alt == seq["chr1"][6000] + "TTT"
    assert (by_pos[7001][0].ref, by_pos[7001][0].alt) == (seq["chr1"][7000:7004], seq["chr1"][7000])
    assert not {9001, 9501, 13501, 100} & set(by_pos)
    assert {v.chrom for v in variants} == {"chr1", "chr2"}


def test_malformed_alleles_and_duplicates_are_counted(genome, tmp_path):
    """B2: ALT alleles are checked like REF; each malformed allele is counted under its name (or stops the
    run under ref_check 'stop'), and a repeated record is scored once and counted."""
    fa, seq = genome
    b = seq["chr1"][5000]
    lines = [
        ("chr1", 5001, "ok", b, other(b)),
        ("chr1", 5001, "again", b, other(b)),  # duplicate of the first (another ID)
        ("chr1", 5001, ".", b.lower(), other(b).lower()),  # the same again, in lower case
        ("chr1", 5001, ".", b, f"{other(b)},A1,A-,Z,R,X,\u00c4"),  # one good ALT (a duplicate) and six bad ones
        ("chr1", 5001, ".", "-", "A"),  # bad REF
        ("chr1", 5001, ".", "A1", "A"),  # bad REF
        ("chr1", 5001, ".", ".", "A"),  # no REF
        ("chr1", 0, ".", "A", "C"),  # POS 0
    ]
    path = write_vcf(tmp_path / "calls.vcf", lines)
    with open(path, "ab") as fh:  # an ALT that is not UTF-8 text
        fh.write(b"chr1\t5001\t.\t" + b.encode() + b"\t\xc4\t.\t.\t.\n")
    for mode in ("skip", "flag"):
        variants, counts = V.read_vcf(path, list(fa.keys()), mode)
        assert [(v.id, v.alt) for v in variants] == [("ok", other(b))]
        got = {
            k: counts[k] for k in ("records", "multiallelic", "no_ref", "bad_ref", "bad_alt", "bad_pos", "duplicate")
        }
        assert got == {
            "records": 9,
            "multiallelic": 1,
            "no_ref": 1,
            "bad_ref": 2,
            "bad_alt": 7,
            "bad_pos": 1,
            "duplicate": 3,
        }
    with pytest.raises(GTAError, match=r"record 4 \(chr1:5001\): ALT 'A1' holds a character other than") as e:
        V.read_vcf(path, list(fa.keys()), "stop")
    assert str(path) in str(e.value) and "bad_alt" in str(e.value) and e.value.inputs == ("vcf", "ref_check")


def test_read_vcf_gz_same_as_plain(genome, vcf, tmp_path):
    fa, _ = genome
    path, _ = vcf
    gz = tmp_path / "calls.vcf.gz"
    pysam.tabix_compress(str(path), str(gz))
    assert V.read_vcf(gz, list(fa.keys())) == V.read_vcf(path, list(fa.keys()))


def test_ref_check_modes(genome, vcf):
    fa, seq = genome
    path, _ = vcf
    names = list(fa.keys())
    with pytest.raises(GTAError) as e:
        V.read_vcf(path, names, ref_check="stop", fasta=fa)
    msg = str(e.value)
    assert str(path) in msg and "rs_bad" in msg and "1 of 11" in msg and "ref_check 'flag' or 'skip'" in msg
    assert e.value.inputs == ("vcf", "fasta", "ref_check")

    flagged, counts = V.read_vcf(path, names, ref_check="flag", fasta=fa)
    assert counts["ref_mismatch"] == 1 and counts["variants"] == 11
    assert [v.id for v in flagged if v.ref_mismatch] == ["rs_bad"]

    kept, counts = V.read_vcf(path, names, ref_check="skip", fasta=fa)
    assert counts["ref_mismatch"] == 1 and counts["variants"] == 10 == len(kept)
    assert "rs_bad" not in {v.id for v in kept}

    # check_ref directly: flags follow the kept list, N in the FASTA and past the end mismatch
    variants, _ = V.read_vcf(path, names)
    extra = [
        V.Variant("chr2", 20_011, "in_N", "A", "C"),
        V.Variant("chr2", 20_001, "N_ok", "NN", "A"),
        V.Variant("chr2", 29_999, "past_end", seq["chr2"][29_998:] + "A", "A"),
    ]
    kept, flags, n = V.check_ref(variants + extra, fa, "flag")
    assert n == 3 and len(kept) == len(flags) == 14
    assert [v.id for v, f in zip(kept, flags, strict=False) if f] == ["rs_bad", "in_N", "past_end"]
    kept, flags, n = V.check_ref(variants + extra, fa, "skip")
    assert n == 3 and len(kept) == 11 and not flags.any()
    kept, flags, n = V.check_ref([v for v in variants if v.id != "rs_bad"], fa, "stop")
    assert n == 0 and len(kept) == 10 and not flags.any()
    with pytest.raises(GTAError, match="^ref_check must be one of") as e:
        V.check_ref(variants, fa, "warn")
    assert e.value.input == "ref_check"


@pytest.mark.parametrize("chunk", [1 << 20, 5_000])
def test_fasta_refs_match_slicing(genome, monkeypatch, chunk):
    """REF spans read in merged runs (clusters, gaps over 4 kb, spans cut at the chunk size, past the end)
    equal slices of the upper-cased sequence padded with N, by hand."""
    fa, seq = genome
    monkeypatch.setattr(V, "_REF_CHUNK", chunk)
    rng = random.Random(5)
    variants = []
    for i in range(400):
        chrom = rng.choice(list(LENGTHS))
        pos = rng.choice([rng.randint(1, LENGTHS[chrom]), rng.randint(1, 300), LENGTHS[chrom] - rng.randint(0, 5)])
        variants.append(V.Variant(chrom, pos, f"v{i}", "A" * rng.randint(1, 25), "C"))
    got = V.fasta_refs(variants, fa)
    for v, ref in zip(variants, got, strict=True):
        padded = seq[v.chrom] + "N" * 30
        assert ref == padded[v.start0 : v.end0], v


def test_missing_and_bad_vcf(tmp_path):
    missing = tmp_path / "nowhere.vcf"
    with pytest.raises(GTAError, match=str(missing)) as e:
        V.read_vcf(missing, ["chr1"])
    assert e.value.input == "vcf"
    bad = tmp_path / "bad.vcf"
    bad.write_text("this is not a VCF\n")
    with pytest.raises(GTAError, match=str(bad)):
        V.read_vcf(bad, ["chr1"])
    broken = write_vcf(tmp_path / "broken.vcf", [("chr1", 10, ".", "A", "C"), ("chr1", "x", ".", "A", "C")])
    with pytest.raises(GTAError, match=r"line 8 .* its POS 'x' is not a whole number"):
        V.read_vcf(broken, ["chr1"])


def test_place_fixture_variants(genome, genes, vcf):
    fa, _ = genome
    path, _ = vcf
    variants, _ = V.read_vcf(path, list(fa.keys()))
    df, n_outside = V.place(variants, genes, N_BINS, BIN, grid="genome")
    assert list(df.columns) == V.PLACE_COLUMNS
    assert n_outside == 1  # chr1:35001
    pairs = {(variants[r.variant].pos, r.symbol): (r.bin_first, r.bin_last, r.distance) for r in df.itertuples()}
    # chr1:5001 is in AAA's window [0, 20480) bin 1 and BBB's [4096, 24576) bin 0
    assert pairs[(5001, "AAA")] == (1, 1, 5000 - 10_000)
    assert pairs[(5001, "BBB")] == (0, 0, 5000 - 14_000)
    assert pairs[(15001, "CCC")] == (2, 2, 0)
    assert not any(pos == 35001 for pos, _ in pairs)
    assert len(df) == 2 * (len(variants) - 2) + 1  # chr1 variants in both windows, one on chr2


def test_place_matches_brute_force(genome):
    rng = np.random.default_rng(3)
    genes = pd.DataFrame(
        {
            "gene_id": np.arange(30) + 1,
            "symbol": [f"G{i}" for i in range(30)],
            "ensembl_gene": "",
            "name": "",
            "chrom": rng.choice(["chr1", "chr2", "chr3"], 30),
            "tss": rng.integers(0, 40_000, 30),
            "strand": "+",
        }
    )
    variants = []
    for i in range(200):
        chrom = str(rng.choice(["chr1", "chr2", "chr4"], p=[0.5, 0.4, 0.1]))
        ref_len = int(rng.choice([1, 1, 2, 5, 300, 6000]))
        variants.append(V.Variant(chrom, int(rng.integers(1, 45_000)), f"v{i}", "A" * ref_len, "C"))
    for n_bins, bin_size, grid in [(5, 4096, "genome"), (3, 1000, "tss"), (1, 4096, "genome")]:
        df, n_outside = V.place(variants, genes, n_bins, bin_size, grid)
        expected, inside = [], set()
        for vi, v in enumerate(variants):
            for g in genes.itertuples():
                ws = int(G.window_start(int(g.tss), n_bins, bin_size, grid))
                if g.chrom != v.chrom:
                    continue
                touched = [
                    b for b in range(n_bins) if v.start0 < ws + (b + 1) * bin_size and v.end0 > ws + b * bin_size
                ]
                if touched:
                    inside.add(vi)
                    expected.append((vi, g.gene_id, g.symbol, touched[0], touched[-1], v.start0 - int(g.tss)))
        got = [tuple(r) for r in df.itertuples(index=False)]
        assert got == sorted(expected)
        assert n_outside == len(variants) - len(inside)
        assert len(expected) > 50 and n_outside > 10  # the random set exercises both
    df, n_outside = V.place([], genes, 5)
    assert list(df.columns) == V.PLACE_COLUMNS and len(df) == 0 and n_outside == 0


@pytest.mark.parametrize("orient", ["reference", "transcript"])
def test_touched_bins_match_a_loop(genome, orient):
    """score_variants' bookkeeping (gta.scoring._touched_bins): per pair its touched bins as (window column,
    unit), units = distinct (variant, bin start) numbered in order of first use, and each unit's REF and ALT
    sequence; against a plain loop over the pairs and bins."""
    from gta.scoring import _touched_bins

    fa, _ = genome
    rng = np.random.default_rng(4)
    genes = pd.DataFrame(
        {
            "gene_id": np.arange(12) + 1,
            "symbol": [f"G{i}" for i in range(12)],
            "ensembl_gene": "",
            "name": "",
            "chrom": rng.choice(["chr1", "chr2"], 12),
            "tss": rng.integers(0, 30_000, 12),
            "strand": rng.choice(["+", "-"], 12),
        }
    )
    chrom, pos, ref_len = rng.choice(["chr1", "chr2"], 60), rng.integers(1, 30_000, 60), rng.choice([1, 3, 5000], 60)
    variants = [
        V.Variant(str(c), int(p), f"v{i}", "A" * int(k), "C")
        for i, (c, p, k) in enumerate(zip(chrom, pos, ref_len, strict=True))
    ]
    seen = []

    class Scorer:  # records the sequences; a score that names the sequence's index
        def scores(self, seqs, exact):
            seen.extend(seqs)
            return np.arange(len(seen) - len(seqs), len(seen), dtype=np.float32)[:, None] + np.zeros((1, 40))

    n, bin_size = 5, 4096
    pairs, _ = V.place(variants, genes, n, bin_size, "genome")
    per_pair, ref, alt = _touched_bins(pairs, genes, variants, (n, bin_size, "genome", orient), fa, Scorer())
    unit_of, expected = {}, []
    g = genes.set_index("gene_id")
    for row, p in enumerate(pairs.itertuples()):
        start = int(G.window_start(int(g.at[p.gene_id, "tss"]), n, bin_size, "genome"))
        bins = []
        for b in range(p.bin_first, p.bin_last + 1):
            col = n - 1 - b if orient == "transcript" and g.at[p.gene_id, "strand"] == "-" else b
            bins.append((col, unit_of.setdefault((p.variant, start + b * bin_size), len(unit_of))))
        expected.append(bins)
        assert per_pair[row] == bins
    assert len(expected) > 40 and any(len(b) > 1 for b in expected)  # pairs touching several bins
    assert len(ref) == len(alt) == len(unit_of) < sum(map(len, expected))  # bins shared between genes
    for (v, start), u in unit_of.items():
        assert seen[int(ref[u, 0])] == V.ref_bin(fa, variants[v].chrom, start, bin_size)
        assert seen[int(alt[u, 0])] == V.alt_bin(fa, variants[v].chrom, start, bin_size, variants[v])
    assert (per_pair.first_col() == [b[0][0] for b in expected]).all()


def test_alt_bin_properties(genome):
    fa, seq = genome
    s = seq["chr1"]
    L, b0 = 16, 1000
    ref = V.ref_bin(fa, "chr1", b0, L)
    assert ref == s[b0 : b0 + L]

    def var(pos0, r_len, alt):
        return V.Variant("chr1", pos0 + 1, "t", s[pos0 : pos0 + r_len], alt)

    # ALT == REF: the reference bin, whatever the allele's length or where it sits
    for pos0, r_len in [(b0, 1), (b0 + 5, 3), (b0 + 15, 4), (b0 - 2, 5), (b0 - 1, 1)]:
        v = var(pos0, r_len, s[pos0 : pos0 + r_len])
        assert V.alt_bin(fa, "chr1", b0, L, v) == ref
    # SNV: exactly one base differs
    v = var(b0 + 7, 1, other(s[b0 + 7]))
    alt = V.alt_bin(fa, "chr1", b0, L, v)
    assert len(alt) == L and [i for i in range(L) if alt[i] != ref[i]] == [7]
    assert alt[7] == v.alt
    # insertion of k: ceil(k/2) bases shift out of the left end, floor(k/2) out of the right end
    k = 3
    v = var(b0 + 4, 1, s[b0 + 4] + "TTT")
    alt = V.alt_bin(fa, "chr1", b0, L, v)
    assert alt == ref[2:5] + "TTT" + ref[5 : L - 1]
    # deletion of k: k bases pulled in from after the bin
    v = var(b0 + 4, 1 + k, s[b0 + 4])
    alt = V.alt_bin(fa, "chr1", b0, L, v)
    assert alt == ref[:5] + ref[5 + k :] + s[b0 + L : b0 + L + k]
    # a variant outside the bin leaves it unchanged
    for pos0 in (b0 - 5, b0 + L, b0 + L + 100):
        assert V.alt_bin(fa, "chr1", b0, L, var(pos0, 2, "G")) == ref
    # an insertion longer than the bin fills it
    v = var(b0 + 2, 1, s[b0 + 2] + "T" * 40)
    assert V.alt_bin(fa, "chr1", b0, L, v) == "T" * L
    # a deletion running in from the previous bin: the bin starts at the first base after it
    v = var(b0 - 3, 6, s[b0 - 3])  # deletes b0-2 .. b0+2
    assert V.alt_bin(fa, "chr1", b0, L, v) == s[b0 + 3 : b0 + 3 + L]
    # an MNV across the bin edge: its bases in this bin change, REF and ALT aligned from the left
    v = var(b0 - 1, 3, "GGG")
    assert V.alt_bin(fa, "chr1", b0, L, v) == "GG" + ref[2:]
    assert V.alt_bin(fa, "chr1", b0 - L, L, v) == s[b0 - L : b0 - 1] + "G"
    # the bin size is a parameter: 4096-bp bins behave the same, and N pads past the chromosome end
    v = var(b0 + 10, 1 + k, s[b0 + 10])
    big = V.alt_bin(fa, "chr1", b0, 4096, v)
    assert big == s[b0 : b0 + 11] + s[b0 + 11 + k : b0 + 4096 + k] and len(big) == 4096
    end = LENGTHS["chr1"]
    v = var(end - 10, 5, s[end - 10])
    assert V.alt_bin(fa, "chr1", end - L, L, v) == s[end - L : end - 9] + s[end - 5 :] + "N" * 4
    with pytest.raises(GTAError):
        V.alt_bin(fa, "chr2", b0, L, v)


def brute_alt_bin(s: str, b: int, L: int, v: V.Variant) -> str:
    """alt_bin by tagging each haplotype base with the reference base it belongs to (an inserted base: REF's
    last base), taking the bases tagged inside the bin and cutting ceil(k/2) | floor(k/2) of a surplus k
    from the left | right ends, or filling a shortfall from the bases after them."""
    r, a, s0 = v.ref, v.alt, v.start0
    tags = list(range(s0)) + [s0 + min(j, len(r) - 1) for j in range(len(a))] + list(range(v.end0, len(s)))
    hap = s[:s0] + a + s[v.end0 :] + "N" * (2 * L)
    inside = [i for i, tag in enumerate(tags) if b <= tag < b + L]
    first = inside[0] if inside else next(i for i, tag in enumerate(tags) if tag >= b)
    first += max(len(inside) - L + 1, 0) // 2
    return hap[first : first + L]


def test_alt_bin_matches_brute_force(genome):
    fa, seq = genome
    s = seq["chr1"]
    L, b0 = 16, 1000
    rng = random.Random(5)
    for _ in range(400):
        pos0 = rng.randrange(b0 - 8, b0 + L + 2)
        r_len, a_len = rng.randint(1, 12), rng.randint(1, 40)
        v = V.Variant("chr1", pos0 + 1, "t", s[pos0 : pos0 + r_len], "".join(rng.choice("ACGT") for _ in range(a_len)))
        assert V.alt_bin(fa, "chr1", b0, L, v) == brute_alt_bin(s, b0, L, v), v


@pytest.mark.parametrize("before_end", [0, 1, 5, 100, 4095])
@pytest.mark.parametrize("k", [1, 2, 7, 2000, 9000])
def test_an_insertion_always_changes_its_bin(genome, before_end, k):
    """B1: an insertion of k bases anchored `before_end` bases before the bin's last base always changes
    the bin: some of its bases stay in it, and in the bin's right half more than `before_end` when it has
    them (counted by hand: the bin's haplotype segment is bin size + k long, ceil(k/2) cut at its left end)."""
    fa, seq = genome
    s = seq["chr1"]
    b, L = 4096, 4096
    anchor = b + L - 1 - before_end
    inserted = "N" * k  # the FASTA has no N here, so inserted bases are countable
    v = V.Variant("chr1", anchor + 1, "t", s[anchor], s[anchor] + inserted)
    alt = V.alt_bin(fa, "chr1", b, L, v)
    assert len(alt) == L and alt != V.ref_bin(fa, "chr1", b, L)
    kept = alt.count("N")
    p, c = L - before_end, -(-k // 2)  # inserted bases at [p, p + k) of the grown segment; the bin keeps [c, c + L)
    assert kept == min(c + L, p + k) - max(c, p) > 0
    if before_end < L // 2:  # pushing bases out of the right end only, as before, kept before_end of them
        assert kept >= min(before_end + 1, k)
