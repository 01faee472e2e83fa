"""Reference implementations of the biud losses (METHOD.md §3, §6) in plain PyTorch.

Usage: losses_reference.py IN.pt OUT.pt

IN.pt is a dict written by the C++ test with torch::pickle_save: keys "<case>.<name>" -> tensor;
the case name's prefix (clip, roco, pair, sem, efm, efmmask, trimodal, biud) picks the
reference. OUT.pt gets "<case>.loss", "<case>.grad.<input>" and "<case>.metric.<name>".

Written independently of the C++ code: per-row loops where the C++ uses masks, PyTorch's
probability-target cross-entropy and F.kl_div where it writes the sums out.
"""
import sys

import torch
import torch.nn.functional as F


def tau_of(t, lo, hi):
    return t.clamp(lo, hi)


def info_nce(a, b, ag, bg, offset, tau):
    """Symmetric InfoNCE, local rows against global columns."""
    a, b, ag, bg = (F.normalize(x, dim=-1) for x in (a, b, ag, bg))
    labels = torch.arange(a.shape[0]) + offset
    i2t = F.cross_entropy(a @ bg.T / tau, labels)
    t2i = F.cross_entropy(b @ ag.T / tau, labels)
    return 0.5 * (i2t + t2i), i2t, t2i


def false_negatives(emb, findings, bl, offset, by_sim, theta, by_ent):
    n = emb.shape[0] if emb is not None else findings.shape[0]
    fn = torch.zeros(bl, n, dtype=torch.bool)
    for i in range(bl):
        gi = offset + i
        for j in range(n):
            if j == gi:
                continue
            flag = False
            if by_sim:
                r = torch.dot(F.normalize(emb[gi], dim=0), F.normalize(emb[j], dim=0))
                flag = flag or bool(r >= theta)
            if by_ent:
                fi, fj = findings[gi], findings[j]
                known = bool((fi >= 0).all()) and bool((fj >= 0).all())
                flag = flag or (known and torch.equal(fi, fj))
            fn[i, j] = flag
    return fn


def roco(a, b, ag, bg, offset, tau, fn, mode, alpha):
    a, b, ag, bg = (F.normalize(x, dim=-1) for x in (a, b, ag, bg))
    bl = a.shape[0]
    labels = torch.arange(bl) + offset

    def direction(logits):
        if mode == "none":
            return F.cross_entropy(logits, labels)
        if mode == "remove":
            rows = []
            for i in range(bl):
                keep = [j for j in range(logits.shape[1]) if not fn[i, j]]
                rows.append(-(logits[i, labels[i]] - torch.logsumexp(logits[i, keep], 0)))
            return torch.stack(rows).mean()
        target = F.one_hot(labels, logits.shape[1]).to(logits.dtype) + alpha * fn.to(logits.dtype)
        target = target / target.sum(1, keepdim=True)
        return F.cross_entropy(logits, target)  # probability targets

    i2t = direction(a @ bg.T / tau)
    t2i = direction(b @ ag.T / tau)
    return 0.5 * (i2t + t2i), i2t, t2i


def entropy(p):
    """Mean row entropy in nats, through torch.distributions (not the C++ formula)."""
    return torch.distributions.Categorical(probs=p.detach()).entropy().mean()


def pair_loss(s, t, sg, tg, offset, tau, lam, entropies=None):
    sn, sgn = F.normalize(s, dim=-1), F.normalize(sg, dim=-1)
    bl, n = s.shape[0], sg.shape[0]
    kls, pt_rows, ps_rows = [], [], []
    for i in range(bl):
        cols = [j for j in range(n) if j != offset + i]
        st = (t[i] @ tg[cols].T) / tau
        ss = (sn[i] @ sgn[cols].T) / tau
        kls.append(F.kl_div(F.log_softmax(ss, 0), F.log_softmax(st, 0), reduction="sum", log_target=True))
        pt_rows.append(F.softmax(st, 0))
        ps_rows.append(F.softmax(ss, 0))
    kl = torch.stack(kls).mean()
    feat = (1 - F.cosine_similarity(s, t, dim=-1)).mean()
    if entropies is not None:
        entropies["entropy_teacher"] = entropy(torch.stack(pt_rows))
        entropies["entropy_student"] = entropy(torch.stack(ps_rows))
    return kl + lam * feat, kl, feat


def sem_loss(s, t, anchors, tau, entropies=None):
    a = F.normalize(anchors, dim=-1)
    p_t = F.softmax(t @ a.T / tau, dim=1)
    log_p_s = F.log_softmax(F.normalize(s, dim=-1) @ a.T / tau, dim=1)
    if entropies is not None:
        entropies["entropy_teacher"] = entropy(p_t)
        entropies["entropy_student"] = entropy(log_p_s.exp())
    return F.kl_div(log_p_s, p_t, reduction="batchmean")


def fn_truth_metrics(fn, truth, bl, n):
    """Precision/recall of the flagged false negatives against the true ones (NaN when undefined)."""
    tp = (fn & truth).sum().item()
    flagged, true = fn.sum().item(), truth.sum().item()
    nan = float("nan")
    return {"fn_precision": tp / flagged if flagged else nan, "fn_recall": tp / true if true else nan,
            "fn_rate_true": true / (bl * (n - 1))}


def efm_loss(logits, labels, entity):
    v = logits.shape[-1]
    loss = F.cross_entropy(logits.reshape(-1, v), labels.reshape(-1), ignore_index=-100)
    sel = labels != -100
    pred = logits.argmax(-1)
    ok = (pred == labels) & sel
    ent = entity.bool() & sel
    oth = sel & ~entity.bool()
    m = {
        "acc": ok.sum() / sel.sum(),
        "acc_entity": (ok & ent).sum() / ent.sum(),
        "acc_other": (ok & oth).sum() / oth.sum(),
        "n_masked": sel.sum(),
        "n_masked_entity": ent.sum(),
        "n_masked_other": oth.sum(),
    }
    return loss, m


def efm_mask(ids, attn, entity, special, vocab, mask_id, pe, po, mfrac, rfrac, rmin, seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(ids.shape, generator=g, dtype=torch.float64)
    v = torch.rand(ids.shape, generator=g, dtype=torch.float64)
    rnd = torch.randint(rmin, vocab, ids.shape, generator=g, dtype=torch.int64)
    out = ids.clone()
    labels = torch.full_like(ids, -100)
    for i in range(ids.shape[0]):
        for k in range(ids.shape[1]):
            if not attn[i, k] or special[i, k]:
                continue
            p = pe if entity[i, k] else po
            if u[i, k] < p:
                labels[i, k] = ids[i, k]
                if v[i, k] < mfrac:
                    out[i, k] = mask_id
                elif v[i, k] < mfrac + rfrac:
                    out[i, k] = rnd[i, k]
    return out, labels


def main():
    # torch::pickle_save tags typed containers with restore_type_tag (harmless: it only attaches
    # the TorchScript type Dict[str, Tensor]); allow it and nothing else.
    import torch.jit._pickle
    with torch.serialization.safe_globals([torch.jit._pickle.restore_type_tag]):
        inp = torch.load(sys.argv[1], weights_only=True)
    cases = {}
    for key, val in inp.items():
        case, name = key.split(".", 1)
        cases.setdefault(case, {})[name] = val
    out = {}
    for case, d in sorted(cases.items()):
        kind = case.split("_")[0]
        grads = [k for k in d if k.startswith("x_")]  # differentiable inputs are named x_*
        for k in grads:
            d[k] = d[k].clone().requires_grad_(True)
        s = lambda k: float(d[k])  # noqa: E731
        metrics = {}
        if kind == "clip":
            tau = tau_of(d["x_tau"], s("tau_min"), s("tau_max"))
            loss, i2t, t2i = info_nce(d["x_a"], d["x_b"], d.get("x_ag", d["x_a"]), d.get("x_bg", d["x_b"]),
                                      int(d.get("offset", 0)), tau)
            metrics = {"i2t": i2t, "t2i": t2i, "tau": tau}
        elif kind == "roco":
            tau = tau_of(d["x_tau"], s("tau_min"), s("tau_max"))
            mode = ["none", "remove", "soft"][int(d["mode"])]
            bl, offset = d["x_a"].shape[0], int(d.get("offset", 0))
            ag, bg = d.get("x_ag", d["x_a"]), d.get("x_bg", d["x_b"])
            fn = false_negatives(d["emb"], d["findings"], bl, offset, True, s("theta"), True)
            loss, i2t, t2i = roco(d["x_a"], d["x_b"], ag, bg, offset, tau, fn, mode, s("alpha"))
            n = ag.shape[0]
            metrics = {"i2t": i2t, "t2i": t2i, "fn_rate": fn.sum() / (bl * (n - 1))}
            if "true" in d:
                truth = false_negatives(None, d["true"], bl, offset, False, 0.0, True)
                metrics.update(fn_truth_metrics(fn, truth, bl, n))
        elif kind == "pair":
            ent = {}
            loss, kl, feat = pair_loss(d["x_s"], d["x_t"], d.get("x_sg", d["x_s"]), d.get("x_tg", d["x_t"]),
                                       int(d.get("offset", 0)), s("tau"), s("lambda"), ent)
            metrics = {"kl": kl, "feat": feat, **ent}
        elif kind == "sem":
            loss = sem_loss(d["x_s"], d["x_t"], d["x_anchors"], s("tau"), metrics)
        elif kind == "biudprompts":
            # loss.sem.anchors: prompts — the fixed anchors, not the batch's report embeddings
            tau = tau_of(d["x_tau"], s("tau_min"), s("tau_max"))
            lr = info_nce(d["x_a"], d["x_b"], d["x_a"], d["x_b"], 0, tau)[0]
            ls = sem_loss(d["x_s"], d["x_t"], d["x_anchors"], s("tau_s"), metrics)
            loss = lr + s("w_sem") * ls
            metrics["sem"] = ls
        elif kind == "efm":
            loss, metrics = efm_loss(d["x_logits"], d["labels"], d["entity"])
        elif kind == "efmmask":
            o, lab = efm_mask(d["ids"], d["attn"], d["entity"], d["special"], int(d["vocab"]), int(d["mask_id"]),
                              s("pe"), s("po"), s("mfrac"), s("rfrac"), int(d["rmin"]), int(d["seed"]))
            out[f"{case}.input_ids"] = o
            out[f"{case}.labels"] = lab
            continue
        elif kind == "trimodal":
            tau = tau_of(d["x_tau"], s("tau_min"), s("tau_max"))
            x, c, r = d["x_x"], d["x_c"], d["x_r"]
            lcr = info_nce(c, r, c, r, 0, tau)[0]
            lxr = info_nce(x, r, x, r, 0, tau)[0]
            lxc = info_nce(x, c, x, c, 0, tau)[0]
            loss = s("alpha") * lcr + s("beta") * lxr + s("gamma") * lxc
            metrics = {"ct_report": lcr, "xray_report": lxr, "xray_ct": lxc}
        elif kind == "biud":
            tau = tau_of(d["x_tau"], s("tau_min"), s("tau_max"))
            bl = d["x_a"].shape[0]
            fn = false_negatives(d["emb"], d["findings"], bl, 0, True, s("theta"), True)
            lr = roco(d["x_a"], d["x_b"], d["x_a"], d["x_b"], 0, tau, fn, "soft", s("alpha"))[0]
            lp = pair_loss(d["x_s"], d["x_t"], d["x_s"], d["x_t"], 0, s("tau_p"), 0.0)[0]
            ls = sem_loss(d["x_s"], d["x_t"], d["emb"], s("tau_s"))
            le, _ = efm_loss(d["x_logits"], d["labels"], d["entity"])
            loss = lr + s("w_pair") * lp + s("w_sem") * ls + s("w_efm") * le
            metrics = {"roco": lr, "pair": lp, "sem": ls, "efm": le}
        else:
            raise SystemExit(f"unknown case kind {kind!r} in {case!r}")
        out[f"{case}.loss"] = loss.detach()
        for k, v in metrics.items():
            out[f"{case}.metric.{k}"] = torch.as_tensor(v).detach().to(torch.float64)
        gs = torch.autograd.grad(loss, [d[k] for k in grads], allow_unused=True)
        for k, g in zip(grads, gs):
            out[f"{case}.grad.{k}"] = torch.zeros_like(d[k]) if g is None else g
    torch.save(out, sys.argv[2])


if __name__ == "__main__":
    main()
