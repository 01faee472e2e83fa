"""Reference for exact top-K retrieval (retrieval/TopK.h) and biud-retrieve's feature mode.

The scores are PyTorch's fp32 torch.mm over the same tiles biud uses (BLAS kernels round
differently per matrix shape, so the tiling is part of the definition of a score): database
blocks of `db_block` rows, query tiles of `query_block` rows starting at every `chunk` queries.
Features are first rounded to the precision (fp32 / bf16 / fp16) and scored in fp32. The top K
of each row is taken from the full score matrix with a stable descending sort, so equal scores
keep the lower database index first. K above the number of database rows is clamped.

  retrieval_topk.py cases DIR
      DIR/cases.json: [{"inputs": FILE (safetensors with q [N,d], db [M,d]), "k", "db_block",
      "query_block", "chunk" (optional), "precision", "out": FILE}]; writes scores [N,K] and
      indices [N,K] int64 to each `out`.

  retrieval_topk.py fixture DIR --n N --m M --d D --dx DX [--seed S] [--scale X]
      Writes feature files for biud-retrieve's feature mode: ct.npy + ct_ids.txt (CT report
      features), xray.safetensors (tensor `features`, metadata `ids`), xray.npy + xray_ids.txt
      (the same rows), image.safetensors (X-ray image features in shuffled row order with their
      ids), xray_f16.npy (the X-ray report features rounded to float16) — unit rows, or rows of
      norm --scale.

  retrieval_topk.py expect DIR --k K --db-block B --query-block Q --chunk C --precision P [--normalize]
                    [--out PREFIX]
      From DIR's fixture, what biud-retrieve must write: PREFIX.safetensors (default DIR/expected)
      with scores, indices, candidates [N,K,DX] (the image features of each kept X-ray, by id),
      report [N,D]; PREFIX_pairing.csv (ct_id,xray_id,score,rank with 6 decimals).

  retrieval_topk.py many FILE
      Each line of FILE is one of the commands above (split at spaces), run in this process.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from safetensors import safe_open

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def reference_topk(q, db, k, db_block, query_block, precision, chunk=None):
    dt = DTYPES[precision]
    q = q.to(dt).to(torch.float32)
    db = db.to(dt).to(torch.float32)
    n, m = q.shape[0], db.shape[0]
    chunk = chunk or n
    s = torch.empty(n, m, dtype=torch.float32)
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        for b0 in range(0, m, db_block):
            b1 = min(m, b0 + db_block)
            for q0 in range(c0, c1, query_block):
                q1 = min(c1, q0 + query_block)
                s[q0:q1, b0:b1] = torch.mm(q[q0:q1], db[b0:b1].T)
    k = min(k, m)
    vals, idx = torch.sort(s, dim=1, descending=True, stable=True)
    return vals[:, :k].contiguous(), idx[:, :k].contiguous()


def cases(d):
    with open(os.path.join(d, "cases.json")) as f:
        spec = json.load(f)
    for c in spec:
        # fresh (64-byte aligned) copies, as biud's tensors are: BLAS kernels may take other paths
        # for other alignments
        t = {k: v.clone() for k, v in load_file(c["inputs"]).items()}
        s, i = reference_topk(t["q"], t["db"], c["k"], c["db_block"], c["query_block"], c["precision"], c.get("chunk"))
        save_file({"scores": s, "indices": i}, c["out"])


def fixture(d, a):
    os.makedirs(d, exist_ok=True)
    g = np.random.default_rng(a.seed)

    def feats(n, dim):
        x = g.standard_normal((n, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return (x * np.float32(a.scale)).astype(np.float32)

    ct, xr, img = feats(a.n, a.d), feats(a.m, a.d), feats(a.m, a.dx)
    ct_ids = [f"ct{i:05d}" for i in range(a.n)]
    xr_ids = [f"xr{i:06d}_{(i * 7919) % 1000:03d}" for i in range(a.m)]
    np.save(os.path.join(d, "ct.npy"), ct)
    with open(os.path.join(d, "ct_ids.txt"), "w") as f:
        f.write("\n".join(ct_ids) + "\n")
    np.save(os.path.join(d, "xray.npy"), xr)
    np.save(os.path.join(d, "xray_f16.npy"), xr.astype(np.float16))
    with open(os.path.join(d, "xray_ids.txt"), "w") as f:
        f.write("\r\n".join(xr_ids))  # Windows line ends, no final newline
    save_file({"features": torch.from_numpy(xr)}, os.path.join(d, "xray.safetensors"), metadata={"ids": "\n".join(xr_ids)})
    perm = g.permutation(a.m)
    save_file({"features": torch.from_numpy(img[perm].copy())}, os.path.join(d, "image.safetensors"),
              metadata={"ids": "\n".join(xr_ids[p] for p in perm)})


def expect(d, a):
    ct = torch.from_numpy(np.load(os.path.join(d, "ct.npy"))).clone()
    xr = torch.from_numpy(np.load(os.path.join(d, "xray.npy"))).clone()
    ct_ids = open(os.path.join(d, "ct_ids.txt")).read().split()
    xr_ids = open(os.path.join(d, "xray_ids.txt")).read().split()
    with safe_open(os.path.join(d, "image.safetensors"), "pt") as f:
        img = f.get_tensor("features").clone()
        img_ids = f.metadata()["ids"].split("\n")
    if a.normalize:
        ct = ct / ct.norm(dim=1, keepdim=True)
        xr = xr / xr.norm(dim=1, keepdim=True)
        img = img / img.norm(dim=1, keepdim=True)
    s, i = reference_topk(ct, xr, a.k, a.db_block, a.query_block, a.precision, a.chunk)
    row = {x: r for r, x in enumerate(img_ids)}
    cand = torch.stack([torch.stack([img[row[xr_ids[j]]] for j in r.tolist()]) for r in i])
    out = a.out or os.path.join(d, "expected")
    save_file({"scores": s, "indices": i, "candidates": cand.contiguous(), "report": ct.contiguous()},
              out + ".safetensors")
    lines = ["ct_id,xray_id,score,rank"]
    for n in range(i.shape[0]):
        for r in range(i.shape[1]):
            lines.append(f"{ct_ids[n]},{xr_ids[int(i[n, r])]},{float(s[n, r]):.6f},{r + 1}")
    with open(out + "_pairing.csv", "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None):
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "many":
        # one Python start for several commands: each line of the file is one argument list
        with open(sys.argv[2]) as f:
            for line in f:
                if line.strip():
                    main(line.split())
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["cases", "fixture", "expect"])
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--m", type=int, default=300)
    ap.add_argument("--d", type=int, default=24)
    ap.add_argument("--dx", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--db-block", type=int, default=8192)
    ap.add_argument("--query-block", type=int, default=4096)
    ap.add_argument("--chunk", type=int, default=0)
    ap.add_argument("--precision", default="fp32", choices=list(DTYPES))
    ap.add_argument("--normalize", action="store_true")
    ap.add_argument("--out", default="", help="expect: output prefix (default DIR/expected)")
    a = ap.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.command == "cases":
        cases(a.dir)
    elif a.command == "fixture":
        fixture(a.dir, a)
    else:
        expect(a.dir, a)


if __name__ == "__main__":
    sys.exit(main())
