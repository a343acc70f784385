"""Personal expression (gta.personal.predict_individuals) and the demo's simulated population
(gta.demo.population), against independent computations: haplotype sequences edited here as strings, Sei
and the model run by hand, allele sets counted by hand.

The world (a tiny genome, its features, a trained model) is test_apply's module fixture.
"""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
from test_apply import BIN, N_BINS, other, read_prompts, sei_by_hand, window_start, world  # noqa: F401

from gta import GTAError
from gta import variants as V
from gta.personal import PREDICTION_COLUMNS, merge_individual_predictions, predict_individuals
from gta.predict import SeiScorer
from gta.pretrained import GTAModel
from gta.train import load_features

GC = 1003  # gene GC: chr21, TSS 41,000, plus strand (test_apply.GENES)
HEAD = "##fileformat=VCFv4.2\n##contig=<ID=chr21,length=200000>\n##contig=<ID=chr22,length=160000>\n"
FORMAT = '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'


def write_vcf(path, samples: list[str], records: list[tuple]) -> str:
    """A VCF of (chrom, 1-based pos, ref, alt, [GT per sample])."""
    lines = [HEAD + FORMAT + "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"])]
    lines[0] += "\t" + "\t".join(samples)
    for i, (chrom, pos, ref, alt, gts) in enumerate(records):
        lines.append("\t".join([chrom, str(pos), f"v{i}", ref, alt, ".", "PASS", ".", "GT", *gts]))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def run(world, vcf, out, **kw):
    counts = out.with_name(out.stem + ".counts.tsv")
    table = predict_individuals(
        world["model"],
        vcf,
        world["features"],
        world["tss"],
        world["fasta"],
        world["sei"],
        out,
        prompts=world["prompts"],
        device="cpu",
        out_counts=counts,
        **kw,
    )
    return table, dict(pd.read_csv(counts, sep="\t").values.tolist())


@pytest.fixture(scope="module")
def two_alleles(world):
    """In one bin of GC's window (the TSS bin's right neighbour): an SNV and, 700 bp on, a 30-bp deletion."""
    s = world["seqs"]["chr21"]
    b = N_BINS // 2 + 1
    start = window_start(41_000) + b * BIN
    p_snv, p_del = start + 1000, start + 1700  # 0-based
    snv = ("chr21", p_snv + 1, s[p_snv], other(s[p_snv]))
    dele = ("chr21", p_del + 1, s[p_del : p_del + 31], s[p_del])
    return {"b": b, "start": start, "snv": snv, "del": dele}


@pytest.fixture(scope="module")
def personal(world, two_alleles):
    """S1 carries the SNV on haplotype 1 and both alleles on haplotype 2; S2 is S1's copy; S3 is reference
    with one missing call."""
    snv, dele = two_alleles["snv"], two_alleles["del"]
    vcf = write_vcf(
        world["dir"] / "personal.vcf",
        ["S1", "S2", "S3"],
        [(*snv, ["1|1", "1|1", "0|0"]), (*dele, ["0|1", "0|1", ".|0"])],
    )
    table, counts = run(world, vcf, world["dir"] / "personal.parquet", genes=["GC"])
    return vcf, table, counts


def test_a_haplotype_equals_its_hand_built_sequence_through_sei_and_the_model(world, two_alleles, personal):
    """S1's haplotype 2 (both alleles): the ALT bin written here by editing the genome string, one-hot, Sei
    and the class projection by hand, then the model on the features-file window in float32:
    prediction = model(stored) + model(base with ALT bin) - model(base with REF bin recomputed)."""
    s = world["seqs"]["chr21"]
    b, start = two_alleles["b"], two_alleles["start"]
    (_, p1, _, a1), (_, p2, r2, a2) = two_alleles["snv"], two_alleles["del"]
    hap = s[: p1 - 1] + a1 + s[p1 : p2 - 1] + a2 + s[p2 - 1 + len(r2) :]  # the haplotype, by string edits
    ref_seq, alt_seq = s[start : start + BIN], hap[start : start + BIN]  # bases before the bin are unchanged
    scores = sei_by_hand(world["sei"], [ref_seq, alt_seq])
    gene_id, _, x = load_features(world["features"], N_BINS)
    stored = x[list(gene_id).index(GC)]
    model = GTAModel.from_pretrained(world["model"], device="cpu")
    base, alt = stored.copy(), stored.copy()
    base[b], alt[b] = scores[0], scores[1]
    y = model.predict(
        np.stack([stored, base, alt]), [read_prompts(world)[GC]] * 3, strand=["+"] * 3, autocast="float32"
    )
    expected = y[0] + y[2] - y[1]
    _, table, _ = personal
    row = table[(table["sample"] == "S1") & (table["haplotype"] == 2)].iloc[0]
    assert abs(y[2] - y[1]) > 1e-5  # the alleles move the prediction: the comparison can fail
    assert row["prediction"] == pytest.approx(expected, abs=1e-6 + 1e-3 * abs(y[2] - y[1]))
    assert (row["n_alt"], row["bins_changed"]) == (2, 1)
    # S3 carries nothing (its missing call is REF): exactly the model on the stored window
    ref_rows = table[table["sample"] == "S3"]
    assert (ref_rows["prediction"] == ref_rows["prediction"].iloc[0]).all()
    assert ref_rows["prediction"].iloc[0] == pytest.approx(y[0], abs=1e-6)
    # haplotype 0 is the mean of 1 and 2
    s1 = table[table["sample"] == "S1"].set_index("haplotype")["prediction"]
    assert s1[0] == pytest.approx((s1[1] + s1[2]) / 2, abs=1e-12)


def test_output_schema_and_counts(personal):
    _, table, counts = personal
    assert list(table.columns) == PREDICTION_COLUMNS
    assert table["haplotype"].dtype == np.int8 and table["gene_id"].dtype == np.int64
    assert list(table[["gene_id", "sample", "haplotype"]].itertuples(index=False)) == sorted(
        table[["gene_id", "sample", "haplotype"]].itertuples(index=False)
    )
    assert len(table) == 3 * 3  # 3 samples x 1 gene x haplotypes 1, 2, 0
    assert counts["missing_calls"] == 1 and counts["unphased_calls"] == 0 and counts["samples"] == 3
    # allele sets in the bin: {SNV} (haplotype 1 of S1, S2) and {SNV, deletion} (haplotype 2): 2 distinct, and
    # their one REF bin; naively 4 haplotypes change that bin
    assert (counts["distinct_bins"], counts["ref_bins"], counts["naive_bins"]) == (2, 1, 4)


def test_two_samples_with_the_same_haplotypes_cost_one_computation(world, personal, monkeypatch):
    """S2 is a copy of S1: predicting both sends exactly the sequences S1 alone sends through Sei, and the
    model sees the same windows; their predictions are equal."""
    vcf, table, _ = personal
    sent = []
    original = SeiScorer.scores

    def counting(self, sequences, *a, **kw):
        sent.extend(sequences)
        return original(self, sequences, *a, **kw)

    monkeypatch.setattr(SeiScorer, "scores", counting)
    _, one = run(world, vcf, world["dir"] / "one.parquet", samples=["S1"], genes=["GC"])
    alone = list(sent)
    sent.clear()
    both_table, both = run(world, vcf, world["dir"] / "both.parquet", samples=["S1", "S2"], genes=["GC"])
    assert sorted(sent) == sorted(alone) and len(alone) == 3  # REF bin, {SNV}, {SNV, deletion}
    assert one["distinct_bins"] == both["distinct_bins"] and one["model_windows"] == both["model_windows"]
    assert both["naive_bins"] == 2 * one["naive_bins"]
    p = both_table.set_index(["sample", "haplotype"])["prediction"]
    for h in (0, 1, 2):
        assert p[("S1", h)] == p[("S2", h)]


def brute_haplotype_bin(s: str, b: int, L: int, variants: list) -> str:
    """The bin of a haplotype with several variants by tagging each haplotype base with the reference base it
    belongs to (an inserted base: its REF's last base), as test_variants_io's brute force does for one."""
    tags, hap, at = [], [], 0
    for v in sorted(variants, key=lambda v: v.start0):
        tags += list(range(at, v.start0)) + [v.start0 + min(j, len(v.ref) - 1) for j in range(len(v.alt))]
        hap += list(s[at : v.start0]) + list(v.alt)
        at = v.end0
    tags += list(range(at, len(s)))
    hap = "".join(hap) + s[at:] + "N" * (2 * L)
    inside = [i for i, t in enumerate(tags) if b <= t < b + L]
    first = inside[0] if inside else next(i for i, t in enumerate(tags) if t >= b)
    first += max(len(inside) - L + 1, 0) // 2
    return hap[first : first + L]


def test_alt_bin_of_several_alleles_matches_brute_force(world):
    """Random haplotypes of 1-6 non-overlapping SNVs, MNVs, insertions and deletions around a 16-bp bin: the
    bin alt_bin builds equals the brute force; bin_alleles names every variant the bin reads (alt_bin
    with only those gives the same bin)."""
    from gta.genome import open_fasta

    fa = open_fasta(world["fasta"])
    s = world["seqs"]["chr21"]
    L, b0 = 16, 5000
    rng = random.Random(3)
    for _ in range(400):
        variants, pos = [], b0 - 10
        for _ in range(rng.randint(1, 6)):
            pos += rng.randint(0, 8)
            r_len, a_len = rng.randint(1, 10), rng.randint(1, 12)
            alt = "".join(rng.choice("ACGT") for _ in range(a_len))
            variants.append(V.Variant("chr21", pos + 1, "t", s[pos : pos + r_len], alt))
            pos += r_len
        got = V.alt_bin(fa, "chr21", b0, L, variants)
        assert got == brute_haplotype_bin(s, b0, L, variants), variants
        assert V.alt_bin(fa, "chr21", b0, L, V.bin_alleles(b0, L, variants)) == got


def test_shards_merge_to_the_whole(world, personal, tmp_path):
    vcf, _, _ = personal
    whole, _ = run(world, vcf, tmp_path / "whole.parquet", genes=["GA", "GB", "GC"])
    parts = [tmp_path / f"{i}-of-2.parquet" for i in (1, 2)]
    for i, p in enumerate(parts, 1):
        run(world, vcf, p, genes=["GA", "GB", "GC"], shard=f"{i}-of-2")
    merge_individual_predictions(
        parts, [p.with_name(p.stem + ".counts.tsv") for p in parts], tmp_path / "m.parquet", tmp_path / "m.tsv"
    )
    merged = pd.read_parquet(tmp_path / "m.parquet")
    pd.testing.assert_frame_equal(merged, whole)
    assert set(merged["gene_id"]) == {1001, 1002, 1003}


# ----------------------------------------------------------------------------- bad input


def test_bad_input_stops_with_a_clear_error_and_leaves_nothing(world, two_alleles, tmp_path):
    s = world["seqs"]["chr21"]
    snv = two_alleles["snv"]
    out = tmp_path / "p.parquet"
    cases = {
        "unphased": ([(*snv, ["0/1"])], {}, "phase"),
        "build": (
            [("chr21", p, other(s[p - 1]), s[p - 1], ["0|1"]) for p in range(40_001, 40_031, 3)],
            {},
            "different genome build",
        ),
        "nothing": ([("chr21", 150_001, s[150_000], other(s[150_000]), ["0|1"])], {"genes": ["GC"]}, "no variant"),
        "sample": ([(*snv, ["0|1"])], {"samples": ["S9"]}, "lacks 1"),
    }
    for name, (records, kw, words) in cases.items():
        vcf = write_vcf(tmp_path / f"{name}.vcf", ["S1"], records)
        with pytest.raises(GTAError, match=words):
            run(world, vcf, out, **kw)
        assert not list(tmp_path.glob("p.*")), name
    # read as phased, and counted, when allowed
    vcf = write_vcf(tmp_path / "unphased.vcf", ["S1"], [(*two_alleles["del"], ["0/1"])])
    table, counts = run(world, vcf, out, unphased="as_phased", genes=["GC"])
    assert counts["unphased_calls"] == 1
    p = table.set_index("haplotype")["prediction"]
    assert p[1] == pytest.approx(2 * p[0] - p[2], abs=1e-12) and p[1] != p[2]


# ----------------------------------------------------------------------------- the simulated population


def test_simulated_population(world, tmp_path):
    """The VCF holds phased calls of every individual; an individual carrying no ALT allele in a gene's window
    has the gene's planted signal on its stored features (gta.demo.simulation.unit_signal, computed on all
    genes) as noiseless expression; the observed one differs by noise."""
    from gta.demo.population import simulate_population
    from gta.demo.simulation import GRAMMAR_CLASSES, unit_signal
    from gta.formats import read_feature_classes, read_feature_genes

    genes = list(world["genes"]["symbol"])  # 17 windows, about 0.2 Mb after merging: some 10 sites
    args = (world["features"], world["tss"], world["fasta"], world["sei"], None)
    outs = [tmp_path / n for n in ("pop.vcf.gz", "expr.tsv", "noiseless.tsv")]
    simulate_population(*args, *outs, n_individuals=12, seed=1, genes=genes)
    assert (tmp_path / "pop.vcf.gz.tbi").is_file()
    variants, carriers, samples, counts = V.read_genotypes(outs[0], ["chr21", "chr22"])
    assert samples == [f"IND{i:03d}" for i in range(1, 13)] and counts["unphased_calls"] == 0
    assert len(variants) > 0 and carriers.any() and not carriers.all()
    noiseless = pd.read_csv(outs[2], sep="\t").set_index("gene_id")
    observed = pd.read_csv(outs[1], sep="\t").set_index("gene_id")
    assert list(noiseless.columns) == samples and (observed.to_numpy() != noiseless.to_numpy()).all()
    gene_id, attrs = read_feature_genes(world["features"])
    unit = unit_signal(read_feature_classes(world["features"], GRAMMAR_CLASSES), int(attrs["tss_bin"]))
    tss = world["genes"].set_index("symbol")
    checked = 0
    for sym in genes:
        g = int(tss.at[sym, "gene_id"])
        ws = window_start(int(tss.at[sym, "tss"]))
        near = [
            k
            for k, v in enumerate(variants)
            if v.chrom == tss.at[sym, "chrom"] and v.end0 > ws and v.start0 < ws + N_BINS * BIN
        ]
        for i, sample in enumerate(samples):
            if not carriers[near, i].any():
                expected = np.sqrt(0.8) * unit[list(gene_id).index(g)]
                assert noiseless.at[g, sample] == pytest.approx(expected, abs=1e-6)
                checked += 1
    assert checked > 0
