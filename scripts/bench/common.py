"""Shared helpers of the side-by-side benchmarks in scripts/bench/ (not a test).

Every benchmark here runs biud and the Python peer a user would pick on the same inputs with the
same threads, alternates them (biud, peer, biud, peer, ...) so that both see the same machine
load, repeats >= 3 times, reports medians, and writes one JSON file:

  {"bench": NAME, "date": ..., "machine": {...}, "load": {"before": [1, 5, 15 min], "after": [...]},
   "threads": N, "rows": [{"measure", "case", "unit", "biud", "peer", "peer_name", "ratio",
                           "biud_runs", "peer_runs", ...}], ...}

ratio = biud / peer (time or memory: below 1 is biud ahead). scripts/bench/table.py turns the
files into one table.
"""
import datetime
import json
import os
import platform
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.join(ROOT, "build", "bin")
PYTHON_PKG = os.path.join(ROOT, "python")

# With OMP_WAIT_POLICY=ACTIVE (what scripts/quickstart.sh exports) this process's own OpenMP
# threads spin after each torch call and take the cores of the biud process being timed beside
# them: the quickstart step measured 490 ms instead of 250 ms that way. Refuse rather than
# print a wrong table.
if os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "ACTIVE":
    raise SystemExit("scripts/bench: OMP_WAIT_POLICY=ACTIVE makes this Python process's idle OpenMP threads spin "
                     "and slow down the programs it times; run `unset OMP_WAIT_POLICY` (or env -u OMP_WAIT_POLICY) "
                     "and start the benchmark again")


def biud_net(arch, preset, image_size=None, checkpointing=False, stem_kernel_depth=0):
    """The PyTorch side's network: biud's Python package (python/biud/models, this checkout's),
    built as biud.load_run builds a config's `model.ct_encoder` (describe_netconfig, then build)
    from the keys the benchmarks pass to biud-embed (`arch`, `preset`, vit3d's `image_size` and
    `checkpointing`, a 3D ResNet's `stem_kernel_depth`), so both sides run the same architecture."""
    import sys
    if PYTHON_PKG not in sys.path:
        sys.path.insert(0, PYTHON_PKG)
    from biud.models import build, describe_netconfig
    net = {"arch": arch, "preset": preset}
    if image_size:
        net["image_size"] = list(image_size)
    if stem_kernel_depth:
        net["stem_kernel_depth"] = stem_kernel_depth
    desc = describe_netconfig(net)
    if checkpointing:
        desc["checkpointing"] = True
    return build(desc)


def params(m):
    return sum(p.numel() for p in m.parameters())


def load_avg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine():
    """CPU model, cores, memory and library versions of this machine."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            k, v = k.strip(), v.strip()
            if k in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "Socket(s)", "L3 cache"):
                info[k.lower().replace("(s)", "s").replace(" ", "_")] = v
        flags = next((ln for ln in out.splitlines() if ln.startswith("Flags:")), "")
        info["avx512"] = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags.split()]
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            info["mem_gib"] = round(int(f.readline().split()[1]) / 1048576, 1)
    except OSError:
        pass
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        pass
    info["biud_malloc"] = biud_malloc()
    return info


def biud_malloc(app="biud-embed"):
    """The allocator biud's executables run: "tcmalloc" when the build linked it
    (cmake/BiudMalloc.cmake), else "glibc"."""
    try:
        out = subprocess.run(["ldd", os.path.join(BIN, app)], capture_output=True, text=True).stdout
    except OSError:
        return "?"
    return "tcmalloc" if "tcmalloc" in out else "glibc"


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def alternate(runners, repeats):
    """Run each callable of `runners` (name -> fn returning a number) in turn, `repeats` rounds,
    the order flipped every round (A B, B A, A B, ...). Returns name -> list of results."""
    out = {k: [] for k in runners}
    names = list(runners)
    for r in range(repeats):
        for k in (names if r % 2 == 0 else names[::-1]):
            out[k].append(runners[k]())
    return out


def row(measure, case, unit, biud_runs, peer_runs, peer_name, **extra):
    b, p = median(biud_runs), median(peer_runs)
    d = {"measure": measure, "case": case, "unit": unit, "biud": b, "peer": p, "peer_name": peer_name,
         "ratio": b / p if p else float("nan"), "biud_runs": biud_runs, "peer_runs": peer_runs}
    d.update(extra)
    return d


def print_rows(rows, header=True):
    if header:
        print(f"{'measure':<34} {'case':<34} {'biud':>10} {'peer':>10} {'biud/peer':>9}  peer")
    for r in rows:
        print(f"{r['measure'][:34]:<34} {r['case'][:34]:<34} {r['biud']:>10.4g} {r['peer']:>10.4g} "
              f"{r['ratio']:>9.2f}  {r['peer_name']} [{r['unit']}]", flush=True)


class Result:
    """Collects rows and writes the JSON (with the load average before and after)."""

    def __init__(self, bench, threads, args=None):
        self.d = {"bench": bench, "date": datetime.datetime.now().isoformat(timespec="seconds"),
                  "machine": machine(), "threads": threads, "load": {"before": load_avg()}, "rows": []}
        if args is not None:
            self.d["args"] = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, list, type(None)))}
        self.t0 = time.time()

    def add(self, r):
        self.d["rows"].append(r)
        print_rows([r], header=len(self.d["rows"]) == 1)

    def write(self, path):
        self.d["load"]["after"] = load_avg()
        self.d["seconds"] = round(time.time() - self.t0, 1)
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.d, f, indent=1)
            os.replace(tmp, path)
        print(f"load average before {self.d['load']['before']} after {self.d['load']['after']}")


def retry(f):
    """f(), retried for up to a minute while the executable is being relinked (a parallel build:
    permission denied / text file busy)."""
    for i in range(30):
        try:
            return f()
        except (PermissionError, OSError) as e:
            if i == 29 or getattr(e, "errno", None) not in (13, 26):
                raise
            time.sleep(2)


def run_json(cmd, env=None):
    """Run a command that prints one JSON object on its last stdout line; return it."""
    e = dict(os.environ)
    if env:
        e.update(env)
    out = retry(lambda: subprocess.run(cmd, capture_output=True, text=True, env=e))
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_peak_rss_mb(cmd, env=None):
    """Run `cmd` as a child; return (its peak resident memory in MiB, its stdout)."""
    import tempfile
    e = dict(os.environ)
    if env:
        e.update(env)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = retry(lambda: subprocess.Popen(cmd, stdout=out, stderr=err, env=e))
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read()
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{text[-2000:]}{err.read()[-2000:]}")
    return ru.ru_maxrss / 1024.0, text
