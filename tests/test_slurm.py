"""The Slurm profile, checked against the installed plugin and run on a real one-node Slurm.

The cluster (munged, slurmctld, slurmd from Debian's Slurm 22.05, no accounting database, one
fake GPU) is started by tests/slurm/start_cluster.sh and stopped by tests/slurm/stop_cluster.sh,
whatever the outcome. Where it cannot run (not root, Slurm/munge not installed and no apt-get
to install them, daemons failing to start) the cluster tests are skipped with the reason, shown
by `pytest -ra`; GTA_SLURM_REQUIRED=1 turns those skips into failures.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import run_snakemake

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"
TINY = REPO / "tests" / "configs" / "tiny.yaml"
SCRIPTS = REPO / "tests" / "slurm"

# What the real-workflow run builds through Slurm: the tiny config's Table 1 (the whole DAG).
TARGETS = ["results/table1.tsv"]
# Outputs compared byte for byte with the local (--cores 2) run of the same config (conftest.tiny_run).
COMPARE = ["results/genes/tss.tsv", "results/features/features.h5", "results/table1.tsv"]
# Rules that declare `resources: gpu=1` on CUDA configs; the profile gives them a GPU partition.
GPU_RULES = ("predict_sei", "train_gta")
# Rules the profile names that the workflow does not have yet (none: a renamed rule fails
# test_profile_names_workflow_rules).
PENDING_RULES: set[str] = set()

RUN_TIMEOUT_S = 900
LOCK_PATH = Path("/tmp/gta-slurm-test.lock")
LOCK_WAIT_S = 900
REQUIRED = os.environ.get("GTA_SLURM_REQUIRED") == "1"


def _profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def _env(slurm_conf: str | None = None) -> dict:
    """The test's environment: venv first, /usr/sbin reachable, no inherited profile or GPUs."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", ""), "/usr/sbin"])
    for var in ("SNAKEMAKE_PROFILE", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID"):
        env.pop(var, None)
    if slurm_conf:
        env["SLURM_CONF"] = slurm_conf
    return env


def _snakemake(args: list[str], cwd: Path, env: dict, timeout_s: int = RUN_TIMEOUT_S):
    """snakemake ARGS (exactly these: no -s, -d, --configfile added) in cwd, under `timeout -k`, so that
    Slurm jobs are not left behind; returns (returncode, combined output)."""
    proc = run_snakemake(
        cwd,
        *args,
        env=env,
        timeout=timeout_s + 60,
        snakefile=None,
        directory=False,
        prefix=("timeout", "-k", "20", str(timeout_s)),
    )
    return proc.returncode, proc.stdout


def _plugin_installed() -> bool:
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return False
    return True


# --- the profile, without a cluster -------------------------------------------------------


def _option_names(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", help_text))


@pytest.fixture(scope="module")
def snakemake_help(tmp_path_factory) -> str:
    if not _plugin_installed():
        pytest.skip("snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')")
    code, out = _snakemake(["--help"], tmp_path_factory.mktemp("help"), _env(), timeout_s=120)
    assert code == 0, out[-2000:]
    return out


@pytest.mark.workflow
def test_profile_keys_are_options_of_installed_snakemake(snakemake_help):
    """Every profile key is a command-line option of this snakemake + slurm plugin."""
    options = _option_names(snakemake_help)
    assert {"executor", "slurm-status-command", "slurm-init-seconds-before-status-checks"} <= options
    unknown = sorted(k for k in _profile() if k not in options)
    assert not unknown, f"profiles/slurm/config.yaml keys unknown to snakemake --help: {unknown}"


def test_profile_status_settings_work_without_accounting():
    """squeue status, and an initial delay whose 3x fits Slurm's default MinJobAge (300 s)."""
    prof = _profile()
    assert prof["executor"] == "slurm"
    assert prof["slurm-status-command"] == "squeue"
    init = prof["slurm-init-seconds-before-status-checks"]
    assert isinstance(init, int) and init >= 1 and 3 * init <= 300
    defaults = prof["default-resources"]
    assert {"slurm_partition", "runtime", "mem_mb"} <= set(defaults)
    for rule in GPU_RULES:
        assert "gpu" not in prof["set-resources"][rule], "rules declare gpu themselves (CUDA configs only)"
        assert prof["set-resources"][rule]["slurm_partition"]


def test_every_rule_that_can_ask_for_a_gpu_gets_the_gpu_partition():
    """A rule declaring `gpu=` in its resources would ask for a GPU in the CPU partition without an entry."""
    rules = set()
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^\s*(?:use )?rule ", smk.read_text(), flags=re.M)[1:]:
            if re.search(r"^\s+gpu=", block, flags=re.M):
                rules.add(re.match(r"\w+", block).group(0))
    assert {"predict_sei", "train_gta", "score_variants"} <= rules  # the scan sees them
    sets = _profile()["set-resources"]
    missing = sorted(r for r in rules if sets.get(r, {}).get("slurm_partition") != "gpu")
    assert not missing, f"profiles/slurm/config.yaml gives no GPU partition to {missing}"


@pytest.mark.workflow
def test_profile_names_workflow_rules(tmp_path):
    """set-resources only names rules the workflow has (a typo would silently do nothing)."""
    code, out = _snakemake(
        ["-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--configfile", str(TINY), "--list-rules"],
        tmp_path,
        _env(),
        timeout_s=120,
    )
    assert code == 0, out[-3000:]
    rules = set(re.findall(r"^(\w+)$", out, flags=re.M))
    assert {"mane_tss", "extract_windows"} <= rules
    missing = sorted(set(_profile()["set-resources"]) - rules - PENDING_RULES)
    assert not missing, f"profiles/slurm/config.yaml set-resources names unknown rules: {missing}"


# --- the real cluster ----------------------------------------------------------------------


def _skip_or_fail(reason: str):
    if REQUIRED:
        pytest.fail(f"GTA_SLURM_REQUIRED=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running one-node cluster for this module: yields its slurm.conf path and directory."""
    if not _plugin_installed():
        _skip_or_fail(
            "real-Slurm test skipped: snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
        )
    if os.geteuid() != 0:
        _skip_or_fail(f"real-Slurm test skipped: the test cluster needs root (uid {os.geteuid()})")
    lock = open(LOCK_PATH, "w")  # noqa: SIM115  (held until the test session ends)
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                lock.close()
                _skip_or_fail(
                    f"real-Slurm test skipped: another test cluster held {LOCK_PATH} for over {LOCK_WAIT_S} s"
                )
            time.sleep(2)
    cdir = tmp_path_factory.mktemp("slurm-cluster")
    try:
        proc = subprocess.run(
            ["bash", str(SCRIPTS / "start_cluster.sh"), str(cdir)],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            why = proc.stderr.strip() or f"start_cluster.sh exited {proc.returncode}"
            _skip_or_fail(f"real-Slurm test skipped: {why}")
        conf = re.search(r"^SLURM_CONF=(.+)$", proc.stdout, flags=re.M).group(1)
        yield conf, cdir
    finally:
        subprocess.run(
            ["bash", str(SCRIPTS / "stop_cluster.sh"), str(cdir)],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _run_uuid(out: str) -> str:
    m = re.search(r"^SLURM run ID: (\S+)$", out, flags=re.M)
    assert m, "no 'SLURM run ID' in snakemake's output: the slurm executor was not used"
    return m.group(1)


def _jobs_in_output(out: str) -> list[dict]:
    """The job blocks snakemake printed: rule, local or not, snakemake jobid, resources, Slurm id."""
    jobs, cur = [], None
    for line in out.splitlines():
        m = re.match(r"^(local)?rule (\w+):$", line)
        if m:
            cur = {"rule": m.group(2), "local": bool(m.group(1)), "resources": {}}
            jobs.append(cur)
        elif cur is not None and (m := re.match(r"^\s+jobid: (\d+)$", line)):
            cur["jobid"] = int(m.group(1))
        elif cur is not None and (m := re.match(r"^\s+resources: (.*)$", line)):
            cur["resources"] = dict(kv.split("=", 1) for kv in m.group(1).split(", ") if "=" in kv)
    submitted = {
        int(a): int(b) for a, b in re.findall(r"^Job (\d+) has been submitted with SLURM jobid (\d+)", out, flags=re.M)
    }
    for job in jobs:
        job["slurm_id"] = submitted.get(job.get("jobid"))
    return jobs


def _minutes(limit: str) -> int:
    """Slurm's [D-]H:MM:SS (or M:SS) time limit in minutes."""
    days, _, hms = limit.rpartition("-")
    parts = [int(p) for p in hms.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    h, m, s = parts
    return (int(days) if days else 0) * 1440 + h * 60 + m + (1 if s else 0)


def _mb(mem: str) -> int:
    """squeue's MinMemory (e.g. 4000M, 32G) in MB."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", mem)
    assert m, f"unexpected memory field {mem!r}"
    return round(float(m.group(1)) * {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2}[m.group(2)])


def _rule_of(comment: str) -> str:
    """The rule name in the plugin's job comment: rule_NAME or rule_NAME_wildcards_VALUES."""
    m = re.fullmatch(r"rule_(\w+?)(?:_wildcards_\S*)?", comment.split()[0] if comment.split() else "")
    assert m, f"unexpected Slurm job comment {comment!r}"
    return m.group(1)


def _slurm_jobs(run_uuid: str, env: dict) -> dict[int, dict]:
    """Slurm's own record of the run's jobs (squeue keeps finished ones for MinJobAge)."""
    fields = [
        "JobID",
        "State",
        "Partition",
        "Comment",
        "TimeLimit",
        "MinMemory",
        "tres-per-job",
        "StartTime",
        "EndTime",
    ]
    proc = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--name", run_uuid, "-O", ",".join(f"{f}:300|" for f in fields)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    jobs = {}
    for line in proc.stdout.splitlines():
        vals = [v.strip() for v in line.split("|")][: len(fields)]
        if len(vals) == len(fields) and vals[0].isdigit():
            rec = dict(zip(fields, vals, strict=False))
            jobs[int(rec["JobID"])] = rec
    return jobs


def _check_slurm_records(out: str, env: dict, cdir: Path) -> tuple[list[dict], dict[int, dict]]:
    """Each non-local job went through Slurm, completed, with the resources snakemake assigned."""
    jobs = _jobs_in_output(out)
    remote = [j for j in jobs if not j["local"]]
    assert remote, "no job was submitted to Slurm"
    unsubmitted = [j["rule"] for j in remote if j["slurm_id"] is None]
    assert not unsubmitted, f"jobs without a Slurm job id: {unsubmitted}"
    records = _slurm_jobs(_run_uuid(out), env)
    assert set(records) == {j["slurm_id"] for j in remote}
    ctld_log = (cdir / "log" / "slurmctld.log").read_text()
    for job in remote:
        rec = records[job["slurm_id"]]
        res = job["resources"]
        assert rec["State"] == "COMPLETED", (job["rule"], rec)
        assert _rule_of(rec["Comment"]) == job["rule"]
        assert rec["Partition"] == res["slurm_partition"]
        assert _minutes(rec["TimeLimit"]) == int(res["runtime"])
        assert _mb(rec["MinMemory"]) == int(res["mem_mb"])
        # started by the main scheduler or, on a busy machine, by the backfill scheduler
        jid, part = job["slurm_id"], rec["Partition"]
        assert re.search(
            rf"sched: Allocate JobId={jid} NodeList=\S+ .*Partition={part}|"
            rf"Started JobId={jid} in {part} on \S+",
            ctld_log,
        ), f"slurmctld never allocated job {jid}"
    assert Counter(j["rule"] for j in remote) == Counter(_rule_of(r["Comment"]) for r in records.values())
    return jobs, records


@pytest.mark.workflow  # ~2-3 min: the tiny config's whole DAG as Slurm jobs
def test_workflow_runs_through_slurm(slurm_cluster, tmp_path, tiny_config, tiny_run):
    """The tiny config through --profile profiles/slurm: the same outputs as the local run."""
    conf, cdir = slurm_cluster
    env = _env(conf)
    run = tmp_path / "slurm"
    run.mkdir()
    code, out = _snakemake(
        [
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(run),
            "--configfile",
            str(tiny_config),
            "--profile",
            str(PROFILE),
            *TARGETS,
        ],
        run,
        env,
    )
    (tmp_path / "slurm.out").write_text(out)
    assert code == 0, f"snakemake through Slurm failed ({code}):\n{out[-6000:]}"
    for target in TARGETS:
        assert (run / target).stat().st_size > 0, target

    jobs, records = _check_slurm_records(out, env, cdir)
    defaults = _profile()["default-resources"]
    for job in jobs:
        if not job["local"] and job["rule"] not in _profile()["set-resources"]:
            assert records[job["slurm_id"]]["Partition"] == defaults["slurm_partition"]
    for path in COMPARE:  # tiny_run: the same config run locally with --cores 2
        assert (run / path).read_bytes() == (tiny_run / path).read_bytes(), f"{path} differs from the local run"


SHARDS = ["1-of-2", "2-of-2"]

PROBE = """
localrules: all, local_step

rule all:
    input:
        expand("env/predict_sei/{{shard}}.env", shard={shards}),
        expand("env/{{r}}.env", r=["train_gta", "cpu_step", "local_step"]),

# Named like the workflow's GPU rules, declaring gpu=1 as they do on CUDA configs.
rule predict_sei:
    output: "env/predict_sei/{{shard}}.env"
    resources: gpu=1
    shell: "env > {{output}}"

rule train_gta:
    output: "env/train_gta.env"
    resources: gpu=1
    shell: "env > {{output}}"

rule cpu_step:
    output: "env/cpu_step.env"
    shell: "env > {{output}}"

rule local_step:
    output: "env/local_step.env"
    shell: "env > {{output}}"
"""


def _read_env(path: Path) -> dict:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.mark.workflow  # ~35 s
def test_gpu_rules_get_a_gpu(slurm_cluster, tmp_path):
    """GPU rules (two Sei shards and a training job, declaring gpu=1) get the node's one GPU
    through the profile: its GPU partition and limits, --gpus=1, one job at a time; other
    rules get the default partition and no GPU; local rules stay out of Slurm."""
    assert set(GPU_RULES) == {"predict_sei", "train_gta"}  # the probe below mirrors these
    conf, cdir = slurm_cluster
    env = _env(conf)
    (tmp_path / "Snakefile").write_text(PROBE.format(shards=SHARDS))
    code, out = _snakemake(["--profile", str(PROFILE)], tmp_path, env)
    (tmp_path / "probe.out").write_text(out)
    assert code == 0, f"probe workflow through Slurm failed ({code}):\n{out[-6000:]}"
    jobs, records = _check_slurm_records(out, env, cdir)
    prof = _profile()

    gpu_envs = {f"env/predict_sei/{s}.env": "predict_sei" for s in SHARDS} | {"env/train_gta.env": "train_gta"}
    gpu_ids = []
    for path, rule in gpu_envs.items():
        job_env = _read_env(tmp_path / path)
        slurm_id = int(job_env["SLURM_JOB_ID"])
        rec = records[slurm_id]
        want = prof["set-resources"][rule]
        assert _rule_of(rec["Comment"]) == rule
        assert job_env["SLURM_JOB_PARTITION"] == want["slurm_partition"] == rec["Partition"]
        assert job_env.get("CUDA_VISIBLE_DEVICES") == "0"
        assert "0" in (job_env.get("SLURM_STEP_GPUS"), job_env.get("SLURM_JOB_GPUS"))
        assert "gpu:1" in rec["tres-per-job"]
        assert _minutes(rec["TimeLimit"]) == want["runtime"]
        assert _mb(rec["MinMemory"]) == want["mem_mb"]
        gpu_ids.append(slurm_id)
    # One GPU on the node: Slurm must have run the GPU jobs one after the other.
    spans = sorted((records[i]["StartTime"], records[i]["EndTime"]) for i in gpu_ids)
    for (_, end_a), (start_b, _) in zip(spans, spans[1:], strict=False):
        assert start_b >= end_a, f"GPU jobs overlapped on a one-GPU node: {spans}"

    cpu_env = _read_env(tmp_path / "env" / "cpu_step.env")
    cpu_rec = records[int(cpu_env["SLURM_JOB_ID"])]
    assert _rule_of(cpu_rec["Comment"]) == "cpu_step"
    assert cpu_env["SLURM_JOB_PARTITION"] == prof["default-resources"]["slurm_partition"] == cpu_rec["Partition"]
    assert "CUDA_VISIBLE_DEVICES" not in cpu_env and "gpu" not in cpu_rec["tres-per-job"]
    assert _minutes(cpu_rec["TimeLimit"]) == prof["default-resources"]["runtime"]
    assert _mb(cpu_rec["MinMemory"]) == prof["default-resources"]["mem_mb"]

    local = [j for j in jobs if j["rule"] == "local_step"]
    assert len(local) == 1 and local[0]["local"] and local[0]["slurm_id"] is None
    assert "SLURM_JOB_ID" not in _read_env(tmp_path / "env" / "local_step.env")


def test_cluster_scripts_skip_cleanly_without_root(tmp_path):
    """start_cluster.sh run as a non-root user exits 77 with the reason, and starts nothing."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the script as another user")
    proc = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "bash",
            str(SCRIPTS / "start_cluster.sh"),
            str(tmp_path / "c"),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,  # a trivial script, but on a loaded 2-core machine process start-up can take long
        cwd="/",  # a directory the unprivileged user can enter, whatever the checkout's permissions
    )
    assert proc.returncode == 77, f"exit {proc.returncode}: {proc.stderr}"
    assert "needs root" in proc.stderr, proc.stderr
    assert not (tmp_path / "c").exists()
