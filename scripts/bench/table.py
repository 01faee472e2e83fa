#!/usr/bin/env python3
"""Collect the JSON files of scripts/bench/all.sh into one JSON and one Markdown table.

  table.py DIR        reads DIR/*.json (common.py's format, and bench_retrieval.py's summary),
                      writes DIR/table.json and DIR/table.md, prints the table.

ratio = biud / peer (time or memory): below 1 means biud is ahead (0.5 = twice as fast).
"""
import datetime
import json
import os
import sys

ORDER = ["preprocess", "tokenizer", "train_loop", "fwd_bwd", "train_step", "memory", "allreduce", "retrieval"]


def fmt(v, unit):
    if v is None or v != v:
        return "-"
    if unit == "s":
        return f"{v:.3g} s" if v < 10 else f"{v:.1f} s"
    if unit == "s/step":
        return f"{v:.3g} s"
    if unit == "ms":
        return f"{v:.3g} ms" if v < 100 else f"{v:.0f} ms"
    if unit == "MiB":
        return f"{v:,.0f} MiB"
    return f"{v:.3g} {unit}"


def retrieval_rows(d):
    s = d["shape"]
    med = d["median"]
    case = f"{s['n']:,} x {s['m']:,}, d={s['d']}, K={s['k']}"
    ident = d.get("identical", {})
    note = (f"search at {100 * d['share_of_mm']['biud']:.0f} % of torch.mm's GFLOP/s (peer "
            f"{100 * d['share_of_mm']['peer']:.0f} %); identical indices {ident.get('indices')}, scores "
            f"{ident.get('scores')}")
    return [{"measure": "top-K retrieval, search", "case": case, "unit": "s", "biud": med["biud"]["search_seconds"],
             "peer": med["peer"]["search_seconds"], "peer_name": "chunked PyTorch (torch.mm + topk per tile)",
             "ratio": d["ratio_biud_over_peer"]["search_seconds"], "note": note},
            {"measure": "top-K retrieval, peak memory", "case": case, "unit": "MiB", "biud": med["biud"]["peak_rss_mib"],
             "peer": med["peer"]["peak_rss_mib"], "peer_name": "chunked PyTorch",
             "ratio": d["ratio_biud_over_peer"]["peak_rss_mib"], "note": ""}]


def note_of(r):
    parts = []
    if r.get("ratio_vs_tuned") is not None:
        parts.append(f"vs {r['tuned_name']}: {r['ratio_vs_tuned']:.2f}")
    for k in ("biud-loop_median", "biud-ncdhw_median", "biud-before_median", "biud-tcmalloc_median"):
        if r.get(k) and r.get("measure") != "peak memory of a training step":
            what = {"biud-loop_median": "with LibTorch's AdamW loop", "biud-ncdhw_median": "without channels-last",
                    "biud-before_median": "with neither", "biud-tcmalloc_median": "under tcmalloc"}[k]
            parts.append(f"biud {what}: {r[k] / r['peer']:.2f}")
    if r.get("ratio_vs_nibabel_resample") is not None:
        parts.append(f"vs no cache (nibabel + MONAI Spacing, {r['nibabel_resample_ms']:.0f} ms): "
                     f"{r['ratio_vs_nibabel_resample']:.5f} (~{1 / r['ratio_vs_nibabel_resample']:,.0f}x)")
    if r.get("biud_process_start_s") is not None:
        parts.append(f"incl. biud-preprocess's process start {1e3 * r['biud_process_start_s']:.0f} ms")
    if r.get("ratio_vs_other_hf") is not None:
        parts.append(f"vs HF {r['other_hf_call']}: {r['ratio_vs_other_hf']:.2f}; ids identical {r.get('ids_identical')}")
    for k, v in r.items():
        if (r.get("measure") == "peak memory of a training step" and k.startswith("biud-") and k.endswith("_median")):
            parts.append(f"{k[5:-7]}: {v:,.0f} MiB")
    if r.get("note"):
        parts.append(r["note"])
    return "; ".join(parts)


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "."
    benches = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".json") or name.startswith("table"):
            continue
        with open(os.path.join(folder, name)) as f:
            try:
                d = json.load(f)
            except json.JSONDecodeError:
                continue
        key = d.get("bench") or ("retrieval" if "ratio_biud_over_peer" in d else name[:-5])
        benches[key] = d
    rows, machine, loads = [], None, {}
    for key in sorted(benches, key=lambda k: ORDER.index(k) if k in ORDER else 99):
        d = benches[key]
        if key == "retrieval":
            rs = retrieval_rows(d)
            loads[key] = None
        else:
            rs = d.get("rows", [])
            machine = machine or d.get("machine")
            loads[key] = d.get("load")
        for r in rs:
            r = dict(r)
            r["bench"] = key
            r.setdefault("threads", d.get("threads"))
            r["load"] = loads[key]
            r["note"] = note_of(r)
            rows.append(r)
        if d.get("skipped"):
            rows.append({"bench": key, "measure": key, "case": "skipped", "unit": "", "biud": None, "peer": None,
                         "ratio": None, "peer_name": "", "note": d["skipped"], "load": loads[key], "threads": None})
    if "retrieval" not in benches:
        rows.append({"bench": "retrieval", "measure": "top-K retrieval", "case": "12,000 x 300,000, d=384, K=5",
                     "unit": "", "biud": None, "peer": None, "ratio": None, "peer_name": "chunked PyTorch",
                     "note": "see docs/retrieval.md", "load": None, "threads": None})
    out = {"date": datetime.date.today().isoformat(), "machine": machine, "rows": rows,
           "benches": {k: {kk: vv for kk, vv in v.items() if kk not in ("rows",)} for k, v in benches.items()}}
    with open(os.path.join(folder, "table.json"), "w") as f:
        json.dump(out, f, indent=1)
    m = machine or {}
    lines = [f"Measured {out['date']} on {m.get('model_name', '?')}, {m.get('cpus', '?')} CPUs, "
             f"{m.get('mem_gib', '?')} GiB, torch {m.get('torch', '?')}, biud's allocator {m.get('biud_malloc', '?')} "
             f"(the Python peers run glibc's malloc). ratio = biud / peer (below 1: biud ahead).", "",
             "| measure | case | threads | biud | peer | biud / peer | load (1 min) before-after | notes |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ld = r.get("load") or {}
        load = f"{ld['before'][0]:.1f}-{ld['after'][0]:.1f}" if ld.get("before") and ld.get("after") else "-"
        ratio = f"**{r['ratio']:.2f}**" if r.get("ratio") is not None else "-"
        lines.append(f"| {r['measure']} | {r['case']} | {r.get('threads') or '-'} | {fmt(r.get('biud'), r['unit'])} | "
                     f"{fmt(r.get('peer'), r['unit'])} ({r.get('peer_name', '')}) | {ratio} | {load} | {r['note']} |")
    md = "\n".join(lines) + "\n"
    with open(os.path.join(folder, "table.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
