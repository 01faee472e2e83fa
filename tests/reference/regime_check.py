"""Independent check of the regime benchmark's numbers (scripts/regime.sh, scripts/regime_report.py).

Usage: regime_check.py OUT_DIR FINDINGS_YAML

From the files the runs left behind, recomputed here without regime_report.py:
  - every per-seed result (OUT/results/<v>_seed<s>.json): each finding's AUROC against the run's
    zeroshot.json, and the macro AUROCs over all / X-ray-visible / CT-only findings (numpy means);
  - the table (OUT/regime.json): per variant the mean macro AUROC and the paired difference from the
    baseline over the common seeds, with the 95 % CI of scipy.stats.ttest_rel(...).confidence_interval();
  - the Markdown table shows those numbers (3 decimals);
  - the experts' gate.json: the retrieval agreement from pairing.csv and the manifests (pandas).
Prints "ok" and exits 0, or lists every mismatch and exits 1.
"""
import glob
import json
import os
import sys

import numpy as np
import pandas as pd
import yaml
from scipy import stats

TOL = 1e-6


def main():
    out, fy = sys.argv[1], sys.argv[2]
    g = yaml.safe_load(open(fy))
    groups = {"all": g["xray_visible"] + g["ct_only"], "visible": g["xray_visible"], "ct_only": g["ct_only"]}
    bad = []

    def close(a, b, what):
        if a is None or b is None:
            if a is not b:
                bad.append(f"{what}: {a} vs {b}")
        elif abs(a - b) > TOL:
            bad.append(f"{what}: {a} vs {b}")

    ct = pd.read_csv(os.path.join(out, "data/ct/ct/manifest.csv")).set_index("id")
    per_seed = {}
    for p in sorted(glob.glob(os.path.join(out, "results", "*.json"))):
        r = json.load(open(p))
        v, s = r["variant"], int(r["seed"])
        zs = json.load(open(os.path.join(out, "runs", f"{v}_seed{s}", "zeroshot", "zeroshot.json")))
        auc = {}
        for f in groups["all"]:
            a = zs["per_label"].get(f, {}).get("auroc")
            if a is not None and not np.isnan(a):
                auc[f] = a
                close(r["auroc"][f], a, f"{v} seed {s} AUROC {f}")
        for k, names in groups.items():
            vals = [auc[f] for f in names if f in auc]
            close(r["macro"][k], float(np.mean(vals)) if vals else None, f"{v} seed {s} macro {k}")
        per_seed.setdefault(v, {})[s] = r
    if not per_seed:
        bad.append("no per-seed results")

    table = json.load(open(os.path.join(out, "regime.json")))
    md = open(os.path.join(out, "regime.md")).read()
    for section, base in (("variants", "clip"), ("text_regime", "txt_clip")):
        for v, e in table[section].items():
            runs = per_seed[v]
            for k in groups:
                m = float(np.mean([runs[s]["macro"][k] for s in runs]))
                close(e["macro"][k], m, f"{v} mean macro {k}")
                seeds = sorted(set(runs) & set(per_seed[base]))
                a = np.array([runs[s]["macro"][k] for s in seeds])
                b = np.array([per_seed[base][s]["macro"][k] for s in seeds])
                d = e["diff_vs_" + base][k]
                close(d["mean"], float(np.mean(a - b)), f"{v} paired difference {k}")
                if len(seeds) >= 2 and np.std(a - b) > 0:
                    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
                    close(d["ci"][0], float(ci.low), f"{v} CI low {k}")
                    close(d["ci"][1], float(ci.high), f"{v} CI high {k}")
                    if v != base and k == "all" and f"{d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]" not in md:
                        bad.append(f"{v}: the Markdown table lacks the difference {d['mean']:+.3f}")
            if f"| {v} | {len(runs)} | {e['macro']['all']:.3f} |" not in md:
                bad.append(f"{v}: the Markdown table lacks its row")
            for f, pe in e.get("probe", {}).items():
                for k in groups:
                    ps = [s for s in sorted(runs) if f in runs[s].get("probe", {})]
                    close(pe["macro"][k], float(np.mean([runs[s]["probe"][f]["macro"][k] for s in ps])),
                          f"{v} probe {f} mean {k}")
                    seeds = [s for s in ps if f in per_seed[base].get(s, {}).get("probe", {})]
                    a = np.array([runs[s]["probe"][f]["macro"][k] for s in seeds])
                    b = np.array([per_seed[base][s]["probe"][f]["macro"][k] for s in seeds])
                    d = pe["diffs"][k]
                    close(d["mean"], float(np.mean(a - b)), f"{v} probe {f} paired difference {k}")
                    if len(seeds) >= 2 and np.std(a - b) > 0:
                        ci = stats.ttest_rel(a, b).confidence_interval(0.95)
                        close(d["ci"][0], float(ci.low), f"{v} probe {f} CI low {k}")
                        close(d["ci"][1], float(ci.high), f"{v} probe {f} CI high {k}")

    for name, xm in (("expert", "data/cxr/cxr/manifest.csv"), ("expert-weak", "data/cxr-weak/cxr/manifest.csv")):
        gp = os.path.join(out, name, "gate.json")
        if not os.path.exists(gp):
            continue
        gj = json.load(open(gp))
        rdir = "retrieval" if name == "expert" else "retrieval-weak"
        pair = pd.read_csv(os.path.join(out, rdir, "pairing.csv"))
        pair = pair[pair["rank"] == pair.groupby("ct_id")["rank"].transform("min")]
        xr = pd.read_csv(os.path.join(out, xm)).set_index("id")
        for k in ("all", "visible"):
            a = ct.loc[pair["ct_id"], groups[k]].values
            b = xr.loc[pair["xray_id"], groups[k]].values
            close(gj["retrieval_agreement_top1"][k], float((a == b).all(1).mean()), f"{name} agreement {k}")
    if bad:
        print("\n".join(bad))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
