#!/usr/bin/env python3
"""The quickstart's BIUD training loop: `biud-train` (configs/quickstart-biud.yaml) vs a minimal
PyTorch loop with a DataLoader over the same CT cache (scripts/bench/peer_loop.py), same threads,
same loader workers, same batch; alternated, >= 3 repeats, medians. Two rows. Not a test.

  start-up to first optimizer step  process launch -> the end of optimizer step 1 (biud: the
                                    `time` of the first metrics.jsonl record; the peer prints it)
  training loop, s/step             (time after step S - time after step K) / (S - K): the steady
                                    state with data loading, K = the warm-up steps left out

Needs the quickstart's outputs (scripts/quickstart.sh: runs/quickstart with data/, cache/,
teacher/, retrieval/, text-encoder/); without them it says so and exits 0 (no rows).

  bench_train_loop.py [--run runs/quickstart] [--threads 2] [--steps 30] [--repeats 3] [--quick] [--json out.json]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

PY = sys.executable


def run_overrides(run):
    """--set flags pointing configs/quickstart*.yaml at another run folder than runs/quickstart."""
    r = os.path.abspath(run)
    return ["--set", f"data.manifest={r}/data/ct/manifest.csv", "--set", f"data.xray_manifest={r}/data/cxr/manifest.csv",
            "--set", f"data.cache_dir={r}/cache", "--set", f"data.pairing={r}/retrieval/pairing.csv",
            "--set", f"model.teacher={r}/teacher", "--set", f"text.vocab={r}/text-encoder/vocab.txt",
            "--set", f"model.text_encoder.weights={r}/text-encoder"]


def biud_times(run, steps, threads, workers, batch):
    """Launch biud-train for `steps` steps; return [launch time, time after step 1, 2, ...]."""
    out = tempfile.mkdtemp(prefix="biud-bench-loop-")
    cmd = [os.path.join(common.BIN, "biud-train"), "--config", os.path.join(common.ROOT, "configs", "quickstart-biud.yaml"),
           "--out", out, "--threads", str(threads), "--quiet", "--set", f"trainer.steps={steps + 1}",
           "--set", "logging.every_steps=1", "--set", f"data.loader.workers={workers}",
           "--set", f"data.loader.batch_size={batch}", *run_overrides(run)]
    metrics = os.path.join(out, "metrics.jsonl")
    t0 = time.time()
    p = common.retry(lambda: subprocess.Popen(cmd, cwd=common.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                               text=True))
    times = {}
    try:
        while len(times) < steps:
            if p.poll() is not None:
                raise SystemExit(f"{' '.join(cmd)} ended ({p.returncode}) before step {steps}:\n{p.stderr.read()[-3000:]}")
            if os.path.exists(metrics):
                with open(metrics) as f:
                    for line in f:
                        if line.endswith("\n"):
                            rec = json.loads(line)
                            times.setdefault(rec["step"], rec["time"])
            time.sleep(0.02)
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)  # our own child: the end-of-run validation and save are not timed
        p.wait()
        shutil.rmtree(out, ignore_errors=True)
    return [t0] + [times[k] for k in range(1, steps + 1)]


def peer_times(run, steps, threads, workers, batch):
    cmd = [PY, os.path.join(common.HERE, "peer_loop.py"), "--run", run, "--steps", str(steps), "--threads", str(threads),
           "--workers", str(workers), "--batch", str(batch)]
    t0 = time.time()
    out = subprocess.run(cmd, cwd=common.ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    recs = {r["step"]: r["time"] for r in map(json.loads, out.stdout.splitlines()) if r["step"] > 0}
    return [t0] + [recs[k] for k in range(1, steps + 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/quickstart", help="the quickstart's run folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="loader workers on both sides (the recipe's 2)")
    ap.add_argument("--batch", type=int, default=32, help="batch size on both sides (the recipe's 32)")
    ap.add_argument("--steps", type=int, default=30, help="steps per loop run")
    ap.add_argument("--skip", type=int, default=5, help="warm-up steps left out of the loop time")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="6 steps of batch 8, 2 left out: a smoke run")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    if a.quick:
        a.steps, a.skip, a.batch = 6, 2, 8
    run = os.path.join(common.ROOT, a.run) if not os.path.isabs(a.run) else a.run
    need = [os.path.join(run, p) for p in ("cache/index.json", "data/ct/manifest.csv", "retrieval/pairing.csv",
                                           "retrieval/teacher_features.safetensors", "teacher/checkpoints")]
    res = common.Result("train_loop", a.threads, a)
    missing = [p for p in need if not os.path.exists(p)]
    if missing:
        print(f"bench_train_loop: no quickstart outputs ({missing[0]} is missing): run scripts/quickstart.sh first; "
              "no rows")
        res.d["skipped"] = f"missing {missing[0]}"
        res.write(a.json)
        return 0
    runs = common.alternate({"biud": lambda: biud_times(run, a.steps, a.threads, a.workers, a.batch),
                             "peer": lambda: peer_times(run, a.steps, a.threads, a.workers, a.batch)}, a.repeats)
    start = {k: [t[1] - t[0] for t in v] for k, v in runs.items()}
    loop = {k: [(t[a.steps] - t[a.skip]) / (a.steps - a.skip) for t in v] for k, v in runs.items()}
    peer = "PyTorch loop, DataLoader over the same cache (peer_loop.py)"
    res.add(common.row("start-up to first optimizer step", f"quickstart BIUD, batch {a.batch}", "s", start["biud"],
                       start["peer"], peer, workers=a.workers))
    res.add(common.row("training loop with data loading", f"quickstart BIUD, batch {a.batch}, steps {a.skip + 1}-{a.steps}",
                       "s/step", loop["biud"], loop["peer"], peer, workers=a.workers))
    res.write(a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
