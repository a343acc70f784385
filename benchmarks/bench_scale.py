"""The CPU side at genome scale: every CPU stage on MANE Select genes at N bins, each step's time and peak RSS.

    python benchmarks/bench_scale.py                      # quick: 2,000 genes, 100,000 variants
    python benchmarks/bench_scale.py --full               # all 19,299 genes, 1,000,000 variants
    python benchmarks/bench_scale.py --full --compare 2000   # both, with the per-gene ratio of each step
    options: [--genes N|all] [--variants 1000000] [--n-bins 251] [--grid genome] [--shards 2] [--workdir DIR]

The genes are the packaged MANE v1.5 Select genes (gta.tss.mane_tss, the first --genes by GeneID, so a
subset is spread over all chromosomes), each with a window of --n-bins bins of 4,096 bp on the demo's
`genome` grid. The genome is a stand-in for GRCh38 at its real chromosome lengths, written cheaply: one
random block of about 1 Mb repeated along each chromosome, 10 kb of N at each end (the demo's
gta.demo.genome would take many minutes at this size; the sequence does not matter here, the FASTA
reads do). Sei is a null model: outputs of the right shape from the first 16 bases of each bin (varied
across bins, no compute), so the stage's own work (FASTA reads, one-hot, strand flip, projection, HDF5)
is what is timed.

Each step runs in a child process of its own, as a workflow rule does (its time includes the imports);
its CPU time the child's user + system time (os.wait4), its peak RSS the child's VmHWM. The steps:
  tss         gta.tss.mane_tss (MANE summary + FASTA index -> tss.tsv)
  windows     gta.genome.extract_windows (windows.bed, BED12 sorted by bedtools)
  sei_plan    the Sei plan of every shard (gta.sei.inference.shard_rows + plan_units, as run_shard)
  sei_shard   gta.sei.inference.run_shard with the null model, one child per shard (--shards, 1 thread)
  merge       gta.sei.features.merge_features
  annotations gta.annotations.fetch_annotations (source mane, offline) + make_prompts
  targets     gta.expression.make_targets (simulated expression, demo grammar)
  load_data   gta.train.load_dataset + Dataset.model_x (what train_gta reads before its first epoch)
  baselines   gta.baselines.fit_baseline: tss_ridge and expecto_style
  table1      gta.evaluate.make_table1: 5,000 bootstraps, the baselines and GTA at 51 bins (1 seed) and at
              N (3 seeds), the noise ceiling and the strand columns (predictions: observed + noise)
  variants    gta.variants.read_vcf with the REF check against the FASTA, then place (the (variant, gene)
              pairs) and the distinct touched bins (gta.scoring.pair_units), as score_variants does
              before Sei
Setup (timed apart, not a stage): the FASTA and a VCF of --variants SNVs and 1-20 bp indels inside the genes'
windows (REF from the FASTA).
Target (all 19,299 genes, N = 251, 2 cores): the steps together in 15 minutes or less, peak RSS <= 8 GB each.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BIN = 4096
LINE = 60
BLOCK_LINES = 16411  # the repeated block: 60 x 16,411 bp, not a multiple of 4,096 (bins do not repeat)
TELOMERE = 10_000
CELL_TYPE = "GM12878 lymphoblastoid cells"
STEPS = ("tss", "windows", "sei_plan", "sei_shard", "merge", "annotations", "targets", "load_data", "baselines")
STEPS += ("table1", "variants")
PRELOAD = ("torch", "pandas", "h5py", "pysam", "gta.sei.inference", "gta.train", "gta.evaluate", "gta.baselines")
PRELOAD += ("gta.expression", "gta.variants", "gta.scoring", "gta.tss", "gta.annotations", "gta.sei.features")


# ----------------------------------------------------------------------------- setup: genome and VCF


def genome_block(seed: int = 0) -> np.ndarray:
    """The repeated block's bases (ASCII, upper case)."""
    return np.frombuffer(b"ACGT", np.uint8)[np.random.default_rng(seed).integers(0, 4, LINE * BLOCK_LINES)]


def _lines(seq: np.ndarray) -> bytes:
    """`seq` as FASTA lines of LINE bases, each ending in a newline (the last one may be shorter)."""
    n = -(-len(seq) // LINE)
    body = np.full((n, LINE + 1), ord("\n"), np.uint8)
    body[:, :LINE] = np.concatenate([seq, np.zeros(n * LINE - len(seq), np.uint8)]).reshape(n, LINE)
    out = body.reshape(-1)
    tail = (n - 1) * (LINE + 1)
    return out[:tail].tobytes() + out[tail : tail + len(seq) - (n - 1) * LINE].tobytes() + b"\n"


def write_genome(path: Path, lengths: dict[str, int], block: np.ndarray) -> None:
    """FASTA + .fai: each chromosome is `block` repeated to its length, with TELOMERE bp of N at each end."""
    fai = []
    period = len(block)
    with open(path, "wb") as fh:
        for name, length in lengths.items():
            fh.write(f">{name}\n".encode())
            offset = fh.tell()
            for s in range(0, length, period):
                seq = block[: min(period, length - s)]
                if s < TELOMERE or s + period > length - TELOMERE:
                    seq = seq.copy()
                    pos = s + np.arange(len(seq))
                    seq[(pos < TELOMERE) | (pos >= length - TELOMERE)] = ord("N")
                fh.write(_lines(seq))
            fai.append(f"{name}\t{length}\t{offset}\t{LINE}\t{LINE + 1}\n")
    Path(str(path) + ".fai").write_text("".join(fai))


def fasta_base(block: np.ndarray, lengths: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The FASTA's bases at 0-based `pos` (upper case; N in the telomeres)."""
    b = block[pos % len(block)].copy()
    b[(pos < TELOMERE) | (pos >= lengths - TELOMERE)] = ord("N")
    return b


def write_vcf(path: Path, tss: Path, fai: Path, n_variants: int, n_bins: int, grid: str, seed: int = 0) -> None:
    """A VCF of n_variants: SNVs (60%), deletions and insertions (20% each, 1-20 bp) at positions drawn
    uniformly inside the genes' windows (overlaps count more), REF from the FASTA; sorted."""
    import pandas as pd

    from gta.genome import window_start
    from gta.tss import read_tss

    rng = np.random.default_rng(seed)
    block = genome_block()
    genes = read_tss(tss)
    length_of = {line.split("\t")[0]: int(line.split("\t")[1]) for line in fai.read_text().splitlines()}
    g = rng.integers(0, len(genes), n_variants)
    chrom = genes["chrom"].to_numpy()[g]
    length = np.array([length_of[c] for c in genes["chrom"]], np.int64)[g]
    ws = np.asarray(window_start(genes["tss"].to_numpy(np.int64), n_bins, BIN, grid), np.int64)[g]
    lo = np.maximum(ws, TELOMERE)
    hi = np.minimum(ws + n_bins * BIN, length - TELOMERE - 32)
    pos0 = lo + (rng.random(n_variants) * (hi - lo)).astype(np.int64)
    kind = rng.choice(3, n_variants, p=[0.6, 0.2, 0.2])  # snv, deletion, insertion
    k = rng.integers(1, 21, n_variants)
    ref_len = np.where(kind == 1, k + 1, 1)
    offsets = np.arange(21)
    ref_codes = fasta_base(block, length[:, None], pos0[:, None] + offsets[None, :])
    ref_codes[offsets[None, :] >= ref_len[:, None]] = 0
    ref = ref_codes.view("S21").ravel().astype(str)
    first = ref_codes[:, 0]
    acgt = np.frombuffer(b"ACGT", np.uint8)
    snv_alt = acgt[(np.searchsorted(acgt, first) + rng.integers(1, 4, n_variants)) % 4]
    ins = acgt[rng.integers(0, 4, (n_variants, 21))]
    ins[offsets[None, :] >= k[:, None] + 1] = 0
    ins[:, 0] = first
    alt = np.where(kind == 0, snv_alt.view("S1").astype(str), np.where(kind == 1, first.view("S1").astype(str), ""))
    alt = np.where(kind == 2, ins.view("S21").ravel().astype(str), alt)
    rank = {c: i for i, c in enumerate(length_of)}
    table = pd.DataFrame({"chrom": chrom, "pos": pos0 + 1, "ref": ref, "alt": alt})
    table["rank"] = table["chrom"].map(rank)
    table = table.sort_values(["rank", "pos"], kind="stable").drop_duplicates(["chrom", "pos", "ref", "alt"])
    with open(path, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n")
        fh.writelines(f"##contig=<ID={c},length={n}>\n" for c, n in length_of.items())
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        ids = "v" + pd.Series(np.arange(1, len(table) + 1)).astype(str)
        lines = table["chrom"] + "\t" + table["pos"].astype(str) + "\t" + ids.to_numpy() + "\t" + table["ref"]
        fh.write("\n".join(lines + "\t" + table["alt"] + "\t.\tPASS\t.") + "\n")


# ----------------------------------------------------------------------------- the null Sei


def null_sei(n_targets: int = 2048):
    """A Sei stand-in: (batch, n_targets) outputs in (0, 1) from the first 16 bases of each bin, no compute."""
    import torch

    class NullSei(torch.nn.Module):
        channels = (0, 0, 0)

        def __init__(self):
            super().__init__()
            self.n_targets = n_targets
            w = torch.from_numpy(np.random.default_rng(1).standard_normal((64, n_targets)).astype(np.float32))
            self.register_buffer("w", w / 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(x[:, :, :16].reshape(len(x), 64) @ self.w)

    return NullSei()


# ----------------------------------------------------------------------------- the steps (child processes)


def _paths(work: Path) -> dict[str, Path]:
    names = ("fasta", "tss", "windows", "features", "annotations", "prompts", "targets", "simulation", "vcf")
    files = ("genome.fa", "tss.tsv", "windows.bed", "features.h5", "annotations.jsonl", "prompts.jsonl")
    files += ("targets.tsv", "simulation.tsv", "variants.vcf")
    paths = {n: work / f for n, f in zip(names, files, strict=True)} | {"shards": work / "shards"}
    return paths | {"fasta": work.parent / "genome.fa"}  # one genome for every run


def _shard_files(p: dict, shards: int) -> list[Path]:
    return [p["shards"] / f"{i}-of-{shards}.h5" for i in range(1, shards + 1)]


def _spec(a: argparse.Namespace):
    from gta.sei.inference import WindowSpec

    return WindowSpec(a.n_bins, BIN, "reference", a.grid)


def _tss(p: dict, a: argparse.Namespace) -> dict:
    from gta.tss import mane_tss

    return {"genes": len(mane_tss("packaged", str(p["fasta"]), str(p["tss"]), "all", a.genes))}


def _windows(p: dict, a: argparse.Namespace) -> dict:
    from gta.genome import extract_windows

    return {"windows": extract_windows(p["tss"], p["fasta"], p["windows"], a.n_bins, BIN, a.grid)}


def _sei_plan(p: dict, a: argparse.Namespace) -> dict:
    from gta.sei.inference import _shard_plan
    from gta.tss import read_tss

    genes = read_tss(p["tss"])
    units = [_shard_plan(genes, p["fasta"], _spec(a), i, a.shards, True)[2].n_units for i in range(1, a.shards + 1)]
    return {"units": sum(units), "units_per_shard": units}


def _sei_shard(p: dict, a: argparse.Namespace, i: int) -> dict:
    from gta.sei.inference import run_shard

    p["shards"].mkdir(exist_ok=True)
    projvec = np.random.default_rng(2).standard_normal((40, 2048))
    out = _shard_files(p, a.shards)[i - 1]
    run_shard(p["tss"], p["fasta"], null_sei(), projvec, out, _spec(a), i, a.shards, batch_size=64)
    return {"shard": f"{i}-of-{a.shards}"}


def _merge(p: dict, a: argparse.Namespace) -> dict:
    from gta.sei.features import merge_features

    merge_features(p["tss"], _shard_files(p, a.shards), p["features"], max_mostly_n_fraction=0.05)
    return {"bytes": p["features"].stat().st_size}


def _annotations(p: dict, a: argparse.Namespace) -> dict:
    from gta.annotations import fetch_annotations, make_prompts

    fetch_annotations(p["tss"], p["annotations"], "mane")
    return {"prompts": make_prompts(p["annotations"], p["prompts"], CELL_TYPE)}


def _targets(p: dict, a: argparse.Namespace) -> dict:
    from gta.expression import make_targets

    t = make_targets(p["tss"], p["features"], "simulated", p["targets"], p["simulation"], signal_fraction=0.8)
    return {"targets": len(t), "test": int((t["split"] == "test").sum())}


def _load_data(p: dict, a: argparse.Namespace) -> dict:
    from gta.train import load_dataset

    data = load_dataset(p["features"], p["targets"], p["prompts"], a.n_bins, p["tss"])
    x = data.model_x()
    return {"genes": len(data.gene_id), "x_gb": round(x.nbytes / 1e9, 3)}


def _baselines(p: dict, a: argparse.Namespace) -> dict:
    from gta.baselines import fit_baseline

    for model in ("tss_ridge", "expecto_style"):
        fit_baseline(model, p["features"], p["targets"], p["tss"], Path(a.workdir) / f"{model}.tsv")
    return {}


def _table1(p: dict, a: argparse.Namespace) -> dict:
    from gta.evaluate import make_table1
    from gta.formats import read_targets, write_predictions

    work = Path(a.workdir)
    tgt = read_targets(p["targets"])
    rows = [["TSS ridge", 1, str(work / "tss_ridge.tsv")], ["ExPecto-style", "all", str(work / "expecto_style.tsv")]]
    for n, seeds in ((51, [0]), (a.n_bins, [0, 1, 2])) if a.n_bins > 51 else ((a.n_bins, [0, 1, 2]),):
        for s in seeds:
            rng = np.random.default_rng([n, s])
            y = tgt["value"].to_numpy(np.float64)
            pred = tgt[["gene_id", "symbol", "split"]].assign(observed=y, predicted=y + rng.standard_normal(len(y)))
            path = work / f"gta_n{n}_s{s}.tsv"
            write_predictions(pred, path)
            rows.append(["GTA", n, str(path), s])
    table = make_table1(rows, p["targets"], p["features"], work / "table1.tsv", p["simulation"], 5000, 0, tss=p["tss"])
    return {"rows": len(table)}


def _variants(p: dict, a: argparse.Namespace) -> dict:
    from gta.genome import open_fasta
    from gta.scoring import pair_units
    from gta.tss import read_tss
    from gta.variants import place, read_vcf

    t = {}
    t0 = time.perf_counter()
    fa = open_fasta(p["fasta"])
    variants, counts = read_vcf(p["vcf"], list(fa.keys()), "stop", fa)
    t["read_vcf_s"] = time.perf_counter() - t0
    genes = read_tss(p["tss"])
    t0 = time.perf_counter()
    pairs, outside = place(variants, genes, a.n_bins, BIN, a.grid)
    t["place_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    per_pair, units = pair_units(pairs, genes, (a.n_bins, BIN, a.grid, "reference"))
    t["pair_units_s"] = time.perf_counter() - t0
    counts = {"variants": len(variants), "pairs": len(pairs), "outside": outside, "touched_bins": len(per_pair.col)}
    return counts | {"distinct_bins": len(units)} | {k: round(v, 2) for k, v in t.items()}


STEP = {
    "tss": _tss,
    "windows": _windows,
    "sei_plan": _sei_plan,
    "merge": _merge,
    "annotations": _annotations,
    "targets": _targets,
    "load_data": _load_data,
    "baselines": _baselines,
    "table1": _table1,
    "variants": _variants,
}


def run_step(step: str, a: argparse.Namespace) -> dict:
    """Do one step in this process (1 torch thread, malloc tuned as the CPU stages do); what it reports."""
    import torch

    from gta.hardware import tune_malloc

    torch.set_num_threads(1)
    tune_malloc()
    p = _paths(Path(a.workdir))
    if step.startswith("sei_shard"):
        return _sei_shard(p, a, int(step.removeprefix("sei_shard")))
    if step == "vcf":
        write_vcf(p["vcf"], p["tss"], Path(str(p["fasta"]) + ".fai"), a.variants, a.n_bins, a.grid)
        return {}
    return STEP[step](p, a)


# ----------------------------------------------------------------------------- the driver


def child(step: str, a: argparse.Namespace, argv: list[str]) -> dict:
    """Run `step` in a child process; its wall time, CPU time (user + system, all its threads), peak RSS (GB)
    and report."""
    report = Path(a.workdir) / f".{step}.json"
    cmd = [sys.executable, __file__, "--step", step, "--report", str(report), *argv]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"step {step} failed (exit {proc.returncode}): {' '.join(cmd)}")
    cpu = usage.ru_utime + usage.ru_stime
    # the child's own peak RSS (VmHWM of its process image): ru_maxrss of a child also counts the parent's RSS
    # at the fork
    return {"step": step, "s": seconds, "cpu_s": cpu, **json.loads(report.read_text())}


def peak_rss_gb() -> float:
    """This process's peak resident set size (VmHWM), GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # not Linux: KiB there too on most


def run_all(a: argparse.Namespace, genes, variants: int) -> list[dict]:
    """Every step on `genes` genes in a fresh folder under a.workdir; one record per step."""
    work = Path(a.workdir) / f"genes_{genes}"
    work.mkdir(parents=True, exist_ok=True)
    argv = ["--genes", str(genes), "--variants", str(variants), "--n-bins", str(a.n_bins), "--grid", a.grid]
    argv += ["--shards", str(a.shards), "--workdir", str(work)]
    sub = argparse.Namespace(**{**vars(a), "workdir": str(work), "genes": genes, "variants": variants})
    p = _paths(work)
    records = []
    t0 = time.perf_counter()
    if not p["fasta"].exists():
        from gta.demo.genome import GRCH38_LENGTHS

        write_genome(p["fasta"], {f"chr{k}": n for k, n in GRCH38_LENGTHS.items()}, genome_block())
    setup_genome = time.perf_counter() - t0
    steps = [s for s in STEPS if s != "sei_shard"]
    steps[steps.index("merge") : steps.index("merge")] = [f"sei_shard{i}" for i in range(1, a.shards + 1)]
    for step in steps:
        if step == "variants":
            t0 = time.perf_counter()
            child("vcf", sub, argv)  # in a child, so that this process stays small
            setup_vcf = time.perf_counter() - t0
        records.append(child(step, sub, argv))
        r = records[-1]
        print(
            f"  {genes} genes: {step:12s} {r['s']:8.1f} s  CPU {r['cpu_s']:8.1f} s  {r['rss_gb']:6.2f} GB", flush=True
        )
    print(f"  setup (not stages): genome FASTA {setup_genome:.1f} s, VCF {setup_vcf:.1f} s", flush=True)
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--genes", default="2000", help="the first N MANE Select genes by GeneID, or 'all' (19,299)")
    ap.add_argument("--variants", type=int, default=100_000, help="variants in the synthetic VCF")
    ap.add_argument("--full", action="store_true", help="all genes and 1,000,000 variants (about 10 minutes)")
    ap.add_argument(
        "--compare", type=int, default=0, help="also run this many genes and give each step's per-gene ratio"
    )
    ap.add_argument("--n-bins", type=int, default=251)
    ap.add_argument("--grid", default="genome", choices=("genome", "tss"))
    ap.add_argument("--shards", type=int, default=2, help="Sei shards (one child process each, one after another)")
    ap.add_argument("--workdir", default=None, help="keep the files here (default: a temporary folder, removed)")
    ap.add_argument("--step", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--report", default=None, help=argparse.SUPPRESS)
    a, _ = ap.parse_known_args()  # benchmarks/run_all.py leaves its own arguments in sys.argv
    if a.full:
        a.genes, a.variants = "all", 1_000_000
    if a.step:
        import logging

        logging.basicConfig(level=logging.WARNING)
        for module in PRELOAD:  # imported before the clock starts: the inner times are the work alone
            importlib.import_module(module)
        t0, c0 = time.perf_counter(), time.process_time()
        out = run_step(a.step, a)
        inner = {"inner_s": round(time.perf_counter() - t0, 2), "inner_cpu_s": round(time.process_time() - c0, 2)}
        inner["rss_gb"] = peak_rss_gb()
        Path(a.report).write_text(json.dumps(out | inner))
        return

    tmp = None
    if a.workdir is None:
        tmp = a.workdir = tempfile.mkdtemp(prefix="bench_scale_")
    try:
        runs = {a.genes: run_all(a, a.genes, a.variants)}
        if a.compare:
            small_variants = max(1, round(a.variants * a.compare / 19_299)) if a.genes == "all" else a.variants
            runs[a.compare] = run_all(a, a.compare, small_variants)
        report(runs, a)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def report(runs: dict, a: argparse.Namespace) -> None:
    """The per-step table: wall and CPU seconds of the child process, the work alone (inner, imports
    excluded), peak RSS; with two runs, each step's per-gene ratio of inner CPU time (big / small)."""
    keys = list(runs)
    n = {k: runs[k][0]["genes"] for k in keys}
    print(f"\nN = {a.n_bins} bins of {BIN} bp, {a.grid} grid, {a.shards} Sei shards (null model), 1 torch thread each")
    print("per step: wall s / CPU s (child process, imports included) / inner CPU s (the work alone) / peak RSS GB")
    head = "".join(f" | {str(n[k]) + ' genes':>33s}" for k in keys)
    print(f"{'step':12s}{head}" + (" | per-gene ratio (inner CPU)" if len(keys) > 1 else ""))
    for i, r in enumerate(runs[keys[0]]):
        cells = "".join(
            f" | {x['s']:7.1f} {x['cpu_s']:7.1f} {x['inner_cpu_s']:7.1f} {x['rss_gb']:6.2f} GB"
            for x in (runs[k][i] for k in keys)
        )
        extra = ""
        if len(keys) > 1:
            s = runs[keys[1]][i]
            ratio = (r["inner_cpu_s"] / n[keys[0]]) / max(s["inner_cpu_s"] / n[keys[1]], 1e-9)
            extra = f" | {ratio:5.2f}"
        print(f"{r['step']:12s}{cells}{extra}")
    for k in keys:
        total, cpu = sum(r["s"] for r in runs[k]), sum(r["cpu_s"] for r in runs[k])
        peak = max(r["rss_gb"] for r in runs[k])
        print(
            f"total {n[k]} genes: wall {total:.1f} s ({total / 60:.1f} min), CPU {cpu:.1f} s ({cpu / 60:.1f} min), "
            f"peak RSS {peak:.2f} GB (target: 15 min, 8 GB)"
        )
        for r in runs[k]:
            info = {x: v for x, v in r.items() if x not in ("step", "s", "cpu_s", "rss_gb", "inner_s", "inner_cpu_s")}
            print(f"  {r['step']}: {json.dumps(info)}")
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPU cores; load average {load:.1f} at the end (other processes slow the wall times)")


if __name__ == "__main__":
    main()
