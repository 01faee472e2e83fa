#!/usr/bin/env python3
"""Oracle pairing for the regime benchmark (docs/regime.md): every CT gets the expert's features
of an X-ray whose finding set is identical to the CT's (the retrieval upper bound).

Two steps around an unmodified `biud-retrieve` run:

  regime_oracle.py prepare CT_MANIFEST XRAY_MANIFEST OUT_DIR [--seed S]
      picks, for every CT, one X-ray of the corpus with the CT's exact label vector (uniformly
      among them, seeded; the closest in Hamming distance when none exists) and writes
      OUT_DIR/oracle_manifest.csv: the CT manifest with each report replaced by its X-ray's report,
      and OUT_DIR/oracle_choice.csv (ct_id, xray_id, hamming). biud-retrieve --top-k 1 on that
      manifest then finds the chosen X-ray's own text (cosine 1) and caches the expert's h* of it.

  regime_oracle.py finish OUT_DIR REAL_FEATURES XRAY_MANIFEST
      rewrites OUT_DIR/teacher_features.safetensors (written by biud-retrieve) into the file the
      biud task reads for this CT manifest: the report embeddings are the CTs' own (taken from the
      real retrieval's file REAL_FEATURES, row by row by id), and so are the fingerprints (same
      expert, same CT and X-ray manifests). Checks that every top-1 X-ray has the chosen finding
      set, and writes OUT_DIR/oracle.json (matches, Hamming distances).
"""
import argparse
import csv
import json
import os
import random

import torch
from safetensors import safe_open
from safetensors.torch import save_file

FINDINGS = ["lung_nodule", "lung_mass", "pleural_effusion", "pneumothorax", "consolidation", "emphysema",
            "cardiomegaly", "pericardial_effusion", "atelectasis", "arterial_calcification"]


def read_manifest(path):
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        return r.fieldnames, list(r)


def labels(row):
    return tuple(int(float(row[f])) for f in FINDINGS)


def prepare(a):
    fields, cts = read_manifest(a.ct_manifest)
    _, xrays = read_manifest(a.xray_manifest)
    by_set = {}
    for x in xrays:
        by_set.setdefault(labels(x), []).append(x)
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    choice = []
    out_rows = []
    for ct in cts:
        want = labels(ct)
        pool = by_set.get(want)
        dist = 0
        if not pool:  # no exact match in the corpus: the closest finding sets
            dist = min(sum(p != q for p, q in zip(want, s)) for s in by_set)
            pool = [x for s, xs in by_set.items() if sum(p != q for p, q in zip(want, s)) == dist for x in xs]
            pool.sort(key=lambda x: x["id"])
        x = pool[rng.randrange(len(pool))]
        choice.append((ct["id"], x["id"], dist))
        row = dict(ct)
        row["findings"], row["impression"] = x["findings"], x["impression"]
        # image paths are relative to the manifest: make them absolute (the manifest moves)
        row["image"] = os.path.abspath(os.path.join(os.path.dirname(a.ct_manifest), ct["image"]))
        out_rows.append(row)
    tmp = os.path.join(a.out, "oracle_manifest.csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(out_rows)
    os.replace(tmp, os.path.join(a.out, "oracle_manifest.csv"))
    tmp = os.path.join(a.out, "oracle_choice.csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ct_id", "xray_id", "hamming"])
        w.writerows(choice)
    os.replace(tmp, os.path.join(a.out, "oracle_choice.csv"))
    exact = sum(d == 0 for _, _, d in choice)
    print(f"oracle: {exact} of {len(choice)} CTs have an X-ray with the identical finding set")


def read_features(path):
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
        t = {k: f.get_tensor(k) for k in f.keys()}
    return t, meta


def finish(a):
    path = os.path.join(a.out, "teacher_features.safetensors")
    t, meta = read_features(path)
    real, rmeta = read_features(a.real_features)
    ids = [s for s in meta["ct_ids"].split("\n") if s]
    rids = [s for s in rmeta["ct_ids"].split("\n") if s]
    assert ids == rids, "oracle and real teacher features list other CTs"
    _, xrays = read_manifest(a.xray_manifest)
    xlab = {x["id"]: labels(x) for x in xrays}
    chosen = {}
    with open(os.path.join(a.out, "oracle_choice.csv"), newline="") as f:
        for r in csv.DictReader(f):
            chosen[r["ct_id"]] = (r["xray_id"], int(r["hamming"]))
    top1 = {}
    with open(os.path.join(a.out, "pairing.csv"), newline="") as f:
        for r in csv.DictReader(f):
            if int(r["rank"]) == 1 or r["ct_id"] not in top1:
                top1.setdefault(r["ct_id"], r["xray_id"])
    same = sum(xlab[top1[i]] == xlab[chosen[i][0]] for i in ids)
    if same != len(ids):
        raise SystemExit(f"oracle: only {same} of {len(ids)} top-1 X-rays have the chosen finding set")
    t["report_embedding"] = real["report_embedding"].clone()
    out_meta = dict(meta)
    for k in ("expert_fingerprint", "ct_manifest_fingerprint", "xray_manifest_fingerprint"):
        if k in rmeta:
            out_meta[k] = rmeta[k]
    tmp = path + ".tmp"
    save_file({k: v.contiguous() for k, v in t.items()}, tmp, metadata=out_meta)
    os.replace(tmp, path)
    d = [h for _, h in chosen.values()]
    summary = {"n_ct": len(ids), "exact_finding_set": sum(x == 0 for x in d) / len(d),
               "mean_hamming": sum(d) / len(d), "top1_has_chosen_set": same / len(ids)}
    with open(os.path.join(a.out, "oracle.json.tmp"), "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(os.path.join(a.out, "oracle.json.tmp"), os.path.join(a.out, "oracle.json"))
    print("oracle:", json.dumps(summary))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("ct_manifest")
    p.add_argument("xray_manifest")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    f = sub.add_parser("finish")
    f.add_argument("out")
    f.add_argument("real_features")
    f.add_argument("xray_manifest")
    a = ap.parse_args()
    prepare(a) if a.cmd == "prepare" else finish(a)


if __name__ == "__main__":
    main()
