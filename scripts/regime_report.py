#!/usr/bin/env python3
"""Numbers of the regime benchmark (scripts/regime.sh, docs/regime.md).

  regime_report.py gate ZEROSHOT_JSON PAIRING_CSV CT_MANIFEST XRAY_MANIFEST FINDINGS_YAML OUT_JSON
                        [--min-zeroshot 0.85] [--min-agreement 0.7]
      the expert's quality: zero-shot macro AUROC on the X-ray test split over the X-ray-visible
      findings, over the CT-only ones and over all; top-1 retrieval agreement (share of CTs whose
      rank-1 X-ray has exactly the CT's finding set; also over the visible findings only; the gate
      uses --agreement-group, all by default). Writes OUT_JSON; exit code 3 when a threshold is missed (the script stops before any student).

  regime_report.py tune RESULTS_DIR OUT_ENV
      the tuning runs' validation zero-shot macro AUROC (RESULTS_DIR/<w>_<tau>/zeroshot/zeroshot.json);
      writes the best as shell assignments W=..., TAU=... to OUT_ENV.

  regime_report.py collect ZEROSHOT_JSON FINDINGS_YAML VARIANT SEED OUT_JSON [--probe F=FINETUNE_JSON ...]
      one per-seed result: per-finding test AUROCs and the macro AUROC over all findings, the
      X-ray-visible ones and the CT-only ones (and, for the text regime, the linear probes').

  regime_report.py table REGIME_DIR FINDINGS_YAML
      the table: per variant the mean macro AUROC and the mean paired difference from the baseline
      (clip; txt_clip for txt_* variants) over the seeds both have, with a 95 % CI (Student t,
      n - 1 degrees of freedom), for all / X-ray-visible / CT-only findings; and the experts'
      numbers. Reads REGIME_DIR/results/*.json and REGIME_DIR/expert*/gate.json; writes
      REGIME_DIR/regime.json and REGIME_DIR/regime.md.
"""
import argparse
import csv
import glob
import json
import math
import os
import sys

import yaml
from scipy import stats

GROUPS = ("all", "visible", "ct_only")


def atomic_write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def groups(findings_yaml):
    g = yaml.safe_load(open(findings_yaml))
    vis, cto = list(g["xray_visible"]), list(g["ct_only"])
    return {"all": vis + cto, "visible": vis, "ct_only": cto}


def macro(per_label, names):
    vals = [per_label[n]["auroc"] for n in names if n in per_label and per_label[n].get("auroc") is not None]
    vals = [v for v in vals if not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else None


def group_macros(per_label, grp):
    return {k: macro(per_label, grp[k]) for k in GROUPS}


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def gate_text(gj):
    """The table's gate column: an expert scored without thresholds (the weak one) was not gated."""
    if gj.get("min_zeroshot_visible", 0) <= 0 and gj.get("min_agreement", 0) <= 0:
        return "not gated"
    return "passed" if gj["passed"] else "missed"


def cmd_gate(a):
    grp = groups(a.findings)
    zs = json.load(open(a.zeroshot))
    m = group_macros(zs["per_label"], grp)
    cts = {r["id"]: r for r in read_csv(a.ct_manifest)}
    xrs = {r["id"]: r for r in read_csv(a.xray_manifest)}
    top1 = {}
    for r in read_csv(a.pairing):
        if r["ct_id"] not in top1 or int(r["rank"]) < top1[r["ct_id"]][1]:
            top1[r["ct_id"]] = (r["xray_id"], int(r["rank"]))

    def agree(names):
        same = [all(int(float(cts[c][n])) == int(float(xrs[x][n])) for n in names) for c, (x, _) in top1.items()]
        return sum(same) / len(same)

    out = {"zeroshot_macro_auroc": m, "retrieval_agreement_top1": {"all": agree(grp["all"]),
                                                                    "visible": agree(grp["visible"])},
           "n_ct": len(top1), "min_zeroshot_visible": a.min_zeroshot, "min_agreement": a.min_agreement}
    ok_zs = m["visible"] is not None and m["visible"] >= a.min_zeroshot
    out["agreement_group"] = a.agreement_group
    ok_ag = out["retrieval_agreement_top1"][a.agreement_group] >= a.min_agreement
    out["passed"] = bool(ok_zs and ok_ag)
    atomic_write(a.out, json.dumps(out, indent=2) + "\n")
    print(f"expert gate: zero-shot macro AUROC visible {m['visible']:.3f} (>= {a.min_zeroshot}: "
          f"{'ok' if ok_zs else 'MISSED'}), CT-only {m['ct_only']:.3f}, all {m['all']:.3f}; top-1 retrieval "
          f"agreement of finding sets: all findings {out['retrieval_agreement_top1']['all']:.3f}, visible findings "
          f"{out['retrieval_agreement_top1']['visible']:.3f} (gate on {a.agreement_group} >= {a.min_agreement}: "
          f"{'ok' if ok_ag else 'MISSED'})")
    return 0 if out["passed"] else 3


def cmd_tune(a):
    best = None
    rows = []
    for d in sorted(glob.glob(os.path.join(a.results, "*", "zeroshot", "zeroshot.json"))):
        name = os.path.basename(os.path.dirname(os.path.dirname(d)))
        w, tau = name.split("_")
        auc = json.load(open(d))["macro"]["auroc"]
        rows.append((float(w), float(tau), auc))
        if best is None or auc > best[2]:
            best = (w, tau, auc)
    if best is None:
        raise SystemExit(f"no tuning results under {a.results}")
    for w, tau, auc in rows:
        print(f"tune: weight {w:g} tau {tau:g}: validation macro AUROC {auc:.4f}")
    atomic_write(a.out, f"W={best[0]}\nTAU={best[1]}\nVAL_AUROC={best[2]:.6f}\n")
    print(f"tune: chosen weight {best[0]} tau {best[1]} (validation macro AUROC {best[2]:.4f})")
    return 0


def cmd_collect(a):
    grp = groups(a.findings)
    zs = json.load(open(a.zeroshot))
    res = {"variant": a.variant, "seed": a.seed,
           "auroc": {n: zs["per_label"][n]["auroc"] for n in grp["all"] if n in zs["per_label"]},
           "macro": group_macros(zs["per_label"], grp)}
    for p in a.probe or []:
        frac, path = p.split("=", 1)
        ft = json.load(open(path))
        res.setdefault("probe", {})[frac] = {"auroc": {n: ft["per_label"][n]["auroc"] for n in grp["all"]
                                                       if n in ft["per_label"]},
                                             "macro": group_macros(ft["per_label"], grp)}
    atomic_write(a.out, json.dumps(res, indent=2) + "\n")
    return 0


def paired(base, other):
    """Mean paired difference other - base over the common seeds, with a 95 % Student-t CI."""
    seeds = sorted(set(base) & set(other))
    d = [other[s] - base[s] for s in seeds if other[s] is not None and base[s] is not None]
    n = len(d)
    if n == 0:
        return {"n": 0, "mean": None, "ci": None, "sd": None}
    mean = sum(d) / n
    if n == 1:
        return {"n": 1, "mean": mean, "ci": None, "sd": None}
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "ci": [mean - half, mean + half], "sd": sd}


def fmt(x, signed=False):
    return "–" if x is None else (f"{x:+.3f}" if signed else f"{x:.3f}")


def fmt_diff(p):
    if p["mean"] is None:
        return "–"
    if p["ci"] is None:
        return f"{p['mean']:+.3f}"
    return f"{p['mean']:+.3f} [{p['ci'][0]:+.3f}, {p['ci'][1]:+.3f}]"


def cmd_table(a):
    grp = groups(a.findings)
    res = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(a.dir, "results", "*.json")))]
    by = {}
    for r in res:
        by.setdefault(r["variant"], {})[int(r["seed"])] = r
    order = [v for v in ["clip", "clip_pair", "clip_sem", "clip_pair_sem", "roco", "roco_pair_sem", "full",
                         "ctl_shuffle", "ctl_oracle", "ctl_weak"] if v in by]
    order += sorted(v for v in by if v not in order and not v.startswith("txt_"))
    txt = [v for v in ["txt_clip", "txt_clip_pair_sem", "txt_ctl_shuffle"] if v in by]
    txt += sorted(v for v in by if v.startswith("txt_") and v not in txt)
    table = {"findings": grp, "variants": {}, "text_regime": {}, "experts": {}}

    def block(names, baseline, into, probes=False):
        base = by.get(baseline, {})
        for v in names:
            runs = by[v]
            e = {"seeds": sorted(runs), "macro": {}, "diff_vs_" + baseline: {}}
            for g in GROUPS:
                vals = [runs[s]["macro"][g] for s in sorted(runs) if runs[s]["macro"][g] is not None]
                e["macro"][g] = sum(vals) / len(vals) if vals else None
                e["diff_vs_" + baseline][g] = paired({s: base[s]["macro"][g] for s in base},
                                                     {s: runs[s]["macro"][g] for s in runs})
            if probes:
                fr = sorted({f for s in runs for f in runs[s].get("probe", {})}, key=float)
                e["probe"] = {}
                for f in fr:
                    e["probe"][f] = {"macro": {}, "diffs": {}}
                    for g in GROUPS:  # all, and per finding group (visible / CT-only: knowledge or not)
                        gv = {s: runs[s]["probe"][f]["macro"][g] for s in runs if f in runs[s].get("probe", {})}
                        gb = {s: base[s]["probe"][f]["macro"][g] for s in base if f in base[s].get("probe", {})}
                        vals = [x for x in gv.values() if x is not None]
                        e["probe"][f]["macro"][g] = sum(vals) / len(vals) if vals else None
                        e["probe"][f]["diffs"][g] = paired(gb, gv)
            into[v] = e

    block(order, "clip", table["variants"])
    block(txt, "txt_clip", table["text_regime"], probes=True)
    for name in ("expert", "expert-weak"):
        g = os.path.join(a.dir, name, "gate.json")
        if os.path.exists(g):
            table["experts"][name] = json.load(open(g))
    oracle = os.path.join(a.dir, "retrieval-oracle", "oracle.json")
    if os.path.exists(oracle):
        table["oracle"] = json.load(open(oracle))
    tuned = os.path.join(a.dir, "tuned.env")
    if os.path.exists(tuned):
        table["tuned"] = dict(line.strip().split("=", 1) for line in open(tuned) if "=" in line)
    atomic_write(os.path.join(a.dir, "regime.json"), json.dumps(table, indent=2) + "\n")

    md = ["# Regime benchmark results", "",
          f"Zero-shot macro AUROC on the CT test split; differences are paired by seed against `clip` "
          f"(mean, 95 % CI, Student t). X-ray-visible: {', '.join(grp['visible'])}. "
          f"CT-only: {', '.join(grp['ct_only'])}.", "",
          "| variant | seeds | all | visible | CT-only | Δ all vs clip | Δ visible vs clip | Δ CT-only vs clip |",
          "|---|---|---|---|---|---|---|---|"]
    for v in order:
        e = table["variants"][v]
        d = e["diff_vs_clip"]
        md.append(f"| {v} | {len(e['seeds'])} | {fmt(e['macro']['all'])} | {fmt(e['macro']['visible'])} | "
                  f"{fmt(e['macro']['ct_only'])} | {fmt_diff(d['all']) if v != 'clip' else ''} | "
                  f"{fmt_diff(d['visible']) if v != 'clip' else ''} | {fmt_diff(d['ct_only']) if v != 'clip' else ''} |")
    if txt:
        md += ["", "Weak student text tower (tiny BERT trained from scratch; the expert keeps MiniLM): zero-shot "
               "and linear probes (macro AUROC over all findings), paired against `txt_clip`.", ""]
        fr = sorted({f for v in txt for f in table["text_regime"][v].get("probe", {})}, key=float)
        md.append("| variant | seeds | zero-shot | Δ zero-shot | " +
                  " | ".join(f"probe {float(f) * 100:g} % | Δ probe {float(f) * 100:g} %" for f in fr) + " |")
        md.append("|---|---|---|---|" + "---|---|" * len(fr))
        for v in txt:
            e = table["text_regime"][v]
            cells = []
            for f in fr:
                p = e["probe"].get(f, {"macro": {"all": None}, "diffs": {"all": {"mean": None}}})
                cells += [fmt(p["macro"]["all"]), fmt_diff(p["diffs"]["all"]) if v != "txt_clip" else ""]
            md.append(f"| {v} | {len(e['seeds'])} | {fmt(e['macro']['all'])} | "
                      f"{fmt_diff(e['diff_vs_txt_clip']['all']) if v != 'txt_clip' else ''} | " + " | ".join(cells) +
                      " |")
        md += ["", "The linear probes by finding group: mean macro AUROC (Δ paired against `txt_clip`, 95 % CI) over "
               "the X-ray-visible findings, where the expert's knowledge can arrive, and over the CT-only ones "
               "(the negative control).", "",
               "| variant | " + " | ".join(f"probe {float(f) * 100:g} % visible | probe {float(f) * 100:g} % CT-only"
                                         for f in fr) + " |",
               "|---|" + "---|---|" * len(fr)]
        for v in txt:
            e = table["text_regime"][v]
            cells = []
            for f in fr:
                p = e["probe"].get(f)
                for g in ("visible", "ct_only"):
                    if p is None:
                        cells.append("–")
                    elif v == "txt_clip":
                        cells.append(fmt(p["macro"][g]))
                    else:
                        cells.append(f"{fmt(p['macro'][g])} ({fmt_diff(p['diffs'][g])})")
            md.append(f"| {v} | " + " | ".join(cells) + " |")
    if table["experts"]:
        md += ["", "Experts (X-ray test split zero-shot macro AUROC; top-1 retrieval agreement of finding sets):", "",
               "| expert | zero-shot all | visible | CT-only | agreement all | agreement visible | gate |",
               "|---|---|---|---|---|---|---|"]
        for name, gj in table["experts"].items():
            z, r = gj["zeroshot_macro_auroc"], gj["retrieval_agreement_top1"]
            md.append(f"| {name} | {fmt(z['all'])} | {fmt(z['visible'])} | {fmt(z['ct_only'])} | {fmt(r['all'])} | "
                      f"{fmt(r['visible'])} | {gate_text(gj)} |")
    if "oracle" in table:
        o = table["oracle"]
        md += ["", f"Oracle pairing: {o['exact_finding_set'] * 100:.1f} % of CTs have an X-ray with the identical "
               f"finding set (mean Hamming distance {o['mean_hamming']:.3f})."]
    if "tuned" in table:
        t = table["tuned"]
        md += ["", f"Distillation weight {t.get('W')} and temperature {t.get('TAU')} (pair and sem), chosen once on "
               f"the validation split (seed 0, clip_pair_sem; validation macro AUROC {t.get('VAL_AUROC')})."]
    atomic_write(os.path.join(a.dir, "regime.md"), "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gate")
    for k in ("zeroshot", "pairing", "ct_manifest", "xray_manifest", "findings", "out"):
        g.add_argument(k)
    g.add_argument("--min-zeroshot", type=float, default=0.85)
    g.add_argument("--min-agreement", type=float, default=0.7)
    g.add_argument("--agreement-group", choices=["all", "visible"], default="all",
                   help="finding set the agreement gate compares: all ten findings, or the X-ray-visible ones")
    t = sub.add_parser("tune")
    t.add_argument("results")
    t.add_argument("out")
    c = sub.add_parser("collect")
    for k in ("zeroshot", "findings", "variant", "seed", "out"):
        c.add_argument(k)
    c.add_argument("--probe", action="append")
    tb = sub.add_parser("table")
    tb.add_argument("dir")
    tb.add_argument("findings")
    a = ap.parse_args()
    return {"gate": cmd_gate, "tune": cmd_tune, "collect": cmd_collect, "table": cmd_table}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
