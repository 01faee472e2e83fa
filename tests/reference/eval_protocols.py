"""Reference numbers for tests/eval/ProtocolsTest.cpp: the published CT-RATE evaluation protocols,
restated from the original code (not copied) and run on the same inputs as the C++ side.

Usage: eval_protocols.py OUT.json [--meteor]

CT-CLIP (github.com/ibrahimethemhamamci/CT-CLIP, commit a2a155c):
  - scripts/zero_shot.py, CTClipInference.infer: prompts f"{pathology} is present." /
    f"{pathology} is not present.", probability = torch.nn.Softmax(dim=0) over the two logits, first entry;
  - scripts/eval.py, plot_roc: roc_curve + auc -> AUROC per pathology;
  - scripts/bootstrap_values.py, find_threshold: thresholds np.linspace(0, 1, 100), predictions
    probabilities > threshold, confusion_matrix, distance sqrt((1 - TPR)^2 + FPR^2), `<=` keeps the last
    (largest) threshold among ties;
  - scripts/bootstrap_values.py, main loop: f1_score(average="weighted"), accuracy_score, precision_score
    at prob > threshold; the mean over the 18 pathologies.
CT2Rep (github.com/ibrahimethemhamamci/CT2Rep, commit 9e85082):
  - CT2Rep/modules/tokenizers.py, Tokenizer.clean_report_mimic_cxr (report_cleaner + sent_cleaner);
  - CT2Rep/modules/data_ct.py __getitem__ (ids[:max_seq_length], max_seq_length = 200) and trainer.py
    (decode of reports_ids[:, 1:]): the reference keeps its first 199 tokens;
  - CT2Rep/modules/metrics.py compute_scores: pycocoevalcap Bleu(4) on {i: [gt]}, {i: [res]} (no PTB
    tokenizer); METEOR and ROUGE-L "run separately" with pycocoevalcap Meteor() and Rouge() on the same dicts.
"""
import json
import math
import re
import shutil
import sys
import warnings

import numpy as np


# ---- CT-CLIP -------------------------------------------------------------------------------------

def softmax2(pos, neg):
    """torch.nn.Softmax(dim=0) over [pos, neg] in float32 (zero_shot.py apply_softmax), first entry."""
    import torch
    out = torch.softmax(torch.stack([torch.tensor(pos, dtype=torch.float32), torch.tensor(neg, dtype=torch.float32)]), dim=0)
    return out[0].double().numpy()


def find_threshold(probabilities, true_labels):
    """Follows scripts/bootstrap_values.py find_threshold."""
    from sklearn.metrics import confusion_matrix
    best_threshold, best_roc = 0, 10000
    for threshold in np.linspace(0, 1, 100):
        predictions = (probabilities > threshold).astype(int)
        cm = confusion_matrix(true_labels, predictions)
        tp, tn, fp, fn = cm[1, 1], cm[0, 0], cm[0, 1], cm[1, 0]
        tpr = tp / (tp + fn)
        fpr = fp / (fp + tn)
        d = math.sqrt(((1 - tpr) ** 2) + (fpr ** 2))
        if d <= best_roc:
            best_roc, best_threshold = d, threshold
    return float(best_threshold)


def ct_clip_case():
    from sklearn.metrics import accuracy_score, auc, f1_score, precision_score, roc_curve
    rng = np.random.default_rng(19)
    names = ["Medical material", "Arterial wall calcification", "Cardiomegaly", "Pericardial effusion",
             "Coronary artery wall calcification", "Hiatal hernia", "Lymphadenopathy", "Emphysema", "Atelectasis",
             "Lung nodule", "Lung opacity", "Pulmonary fibrotic sequela", "Pleural effusion",
             "Mosaic attenuation pattern", "Peribronchial thickening", "Consolidation", "Bronchiectasis",
             "Interlobular septal thickening"]
    n, F = 160, len(names)
    labels = np.zeros((n, F), dtype=int)
    probs = np.zeros((n, F))
    for f in range(F):
        prev = 0.05 + 0.5 * rng.random()
        y = (rng.random(n) < prev).astype(int)
        y[0], y[1] = 0, 1  # both classes
        # Image-text logits (CT-CLIP: cosine x exp(temperature)); a weak signal for positives.
        pos = rng.normal(0, 1.5, n) + (0.3 + 0.15 * f / F) * 3 * y
        neg = rng.normal(0, 1.5, n)
        p = softmax2(pos, neg)
        if f == 3:
            # Probabilities exactly on the threshold grid (p > t is strict) and ties.
            p = np.linspace(0, 1, 100)[rng.integers(0, 100, n)]
        if f == 5:
            # Nearly separable: the threshold rule's ties between grid points.
            p = np.clip(0.5 * y + 0.25 + rng.normal(0, 0.1, n), 0, 1)
        labels[:, f] = y
        probs[:, f] = p
    per = []
    for f in range(F):
        p, y = probs[:, f], labels[:, f]
        fpr, tpr, _ = roc_curve(y, p)
        t = find_threshold(p, y)
        pred = (p > t).astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            per.append({"auroc": float(auc(fpr, tpr)), "threshold": t,
                        "f1": float(f1_score(y, pred, average="weighted")),
                        "accuracy": float(accuracy_score(y, pred)),
                        "precision": float(precision_score(y, pred))})
    macro = {k: float(np.mean([r[k] for r in per])) for k in ("auroc", "f1", "accuracy", "precision")}
    return {"names": names, "probs": probs.tolist(), "labels": labels.tolist(), "per_label": per, "macro": macro,
            "prompts": [f"{names[0]} is present.", f"{names[0]} is not present."]}


# ---- CT2Rep --------------------------------------------------------------------------------------

def clean_report_mimic_cxr(report):
    """Follows CT2Rep/modules/tokenizers.py Tokenizer.clean_report_mimic_cxr."""
    t = report.replace("\n", " ")
    for _ in range(7):
        t = t.replace("__", "_")
    for _ in range(6):
        t = t.replace("  ", " ")
    for _ in range(8):
        t = t.replace("..", ".")
    t = t.replace("1. ", "")
    for k in "2345":
        t = t.replace(f". {k}. ", ". ")
    for k in "2345":
        t = t.replace(f" {k}. ", ". ")
    sentences = t.strip().lower().split(". ")

    def sent_cleaner(s):
        s = s.replace('"', "").replace("/", "").replace("\\", "").replace("'", "").strip().lower()
        return re.sub(r"[.,?;*!%^&_+():-\[\]{}]", "", s)

    return " . ".join(sent_cleaner(s) for s in sentences) + " ."


def ct_rate_like_reports(rng, n):
    """Findings in CT-RATE's style (Findings_EN): numbered lists, measurements, parentheses, slashes."""
    s = [
        "Trachea and both main bronchi are open.",
        "Mediastinal main vascular structures, heart contour and size are normal.",
        "Thoracic aorta diameter is normal (3.4 cm).",
        "Pericardial effusion-thickening was not observed.",
        "Calcific atheroma plaques are observed in the aorta and coronary arteries.",
        "No lymph node in pathological size and appearance was detected in the mediastinum.",
        "When examined in the lung parenchyma window; there are ground-glass opacities in both lungs.",
        "A 12x8 mm nodule is seen in the upper lobe of the right lung (series 3/image 45).",
        "Linear atelectasis in the lower lobes of both lungs.",
        "Minimal pleural effusion on the left, 5 mm thick.",
        "Hiatal hernia is present.",
        "There are emphysematous changes: centrilobular and paraseptal.",
        "Bronchiectasis and peribronchial thickening are seen in the lower lobes!",
        "Interlobular septal thickening [mild] is present.",
        "Degenerative changes are observed in the thoracic vertebrae (T7-T9).",
        "No lytic-destructive lesion was detected in the bone structures.",
        "Upper abdominal organs included in the sections are normal.",
        "Sternotomy wires and a pacemaker are seen; \"postoperative\" changes.",
        "Mosaic attenuation pattern is observed %30 of the parenchyma.",
        "Liver density is decreased {hepatosteatosis?}.",
    ]
    reps = []
    for i in range(n):
        k = int(rng.integers(3, 9))
        body = [s[j] for j in rng.choice(len(s), k, replace=False)]
        kind = i % 5
        if kind == 0:
            text = " ".join(body)
        elif kind == 1:
            text = " ".join(f"{j + 1}. {b}" for j, b in enumerate(body))  # numbered list
        elif kind == 2:
            text = "\n".join(body) + ".."  # line breaks, a doubled full stop
        elif kind == 3:
            text = "  ".join(body).replace("nodule", "nodule__") + " "  # double spaces, underscores
        else:
            text = " ".join(body).upper() if i % 10 == 4 else " ".join(body)
        reps.append(text)
    return reps


def ct2rep_case(with_meteor):
    rng = np.random.default_rng(23)
    refs = ct_rate_like_reports(rng, 40)
    hyps = []
    for r in refs:
        # A generated report: the reference with sentences dropped/reordered, sometimes another one.
        parts = [p for p in re.split(r"(?<=\.)\s+", r) if p]
        if rng.random() < 0.2:
            hyps.append(ct_rate_like_reports(rng, 1)[0])
            continue
        keep = [p for p in parts if rng.random() > 0.25] or parts[:1]
        if len(keep) > 2 and rng.random() < 0.5:
            keep[0], keep[1] = keep[1], keep[0]
        hyps.append(" ".join(keep))
    # A reference longer than CT2Rep's 199-token cut.
    refs.append(" ".join(ct_rate_like_reports(rng, 12)))
    hyps.append(hyps[0])
    clean_h = [clean_report_mimic_cxr(h) for h in hyps]
    clean_r = [clean_report_mimic_cxr(r) for r in refs]
    res = {i: [" ".join(c.split())] for i, c in enumerate(clean_h)}
    gts = {i: [" ".join(c.split()[:199])] for i, c in enumerate(clean_r)}
    out = {"hyps": hyps, "refs": refs, "clean_hyps": clean_h, "clean_refs": clean_r,
           "long_ref_tokens": len(clean_r[-1].split())}
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.rouge.rouge import Rouge
    score, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out["bleu"] = [float(x) for x in score]
    score, scores = Rouge().compute_score(gts, res)
    out["rouge_l"] = float(score)
    out["rouge_l_items"] = [float(x) for x in scores]
    # The same without the 199-token cut (what the cut changes).
    gts_full = {i: [" ".join(c.split())] for i, c in enumerate(clean_r)}
    out["bleu_uncut"] = [float(x) for x in Bleu(4).compute_score(gts_full, res, verbose=0)[0]]
    out["meteor"] = None
    if with_meteor:
        if shutil.which("java"):
            from pycocoevalcap.meteor.meteor import Meteor
            score, scores = Meteor().compute_score(gts, res)
            out["meteor"] = float(score)
            out["meteor_items"] = [float(x) for x in scores]
        else:
            print("java not found: METEOR reference skipped", file=sys.stderr)
    return out


def main():
    out = {"ct_clip": ct_clip_case(), "ct2rep": ct2rep_case("--meteor" in sys.argv)}
    json.dump(out, open(sys.argv[1], "w"))


if __name__ == "__main__":
    main()
