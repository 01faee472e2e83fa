#!/usr/bin/env python3
"""A small folder laid out exactly like the MIMIC-CXR-JPG release (PhysioNet mimic-cxr-jpg 2.0.0),
with the MIMIC-CXR report files beside it, and the manifest a reader following the release's
documentation should make of it (pandas, independent of biud).

  mimic_release.py make ROOT [EXTRA]  tables as shipped (gzip: mimic-cxr-2.0.0-{split,metadata,chexpert}.csv.gz),
                                 JPEGs made from pydicom's real radiograph test files, frontal and lateral
                                 views, -1.0 / empty CheXpert values, one split row without an image file
  mimic_release.py expect ROOT   JSON list of the expected items: frontal views (PA, AP) with an image file;
                                 id, split (validate -> val), patient, findings, impression (report sections),
                                 labels (-1.0 and empty -> null)
"""
import csv
import gzip
import json
import os
import re
import sys

import numpy as np

CHEXPERT = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
            "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
            "Pneumothorax", "Support Devices"]
META = ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows", "Columns",
        "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
        "PatientOrientationCodeSequence_CodeMeaning"]

# (dicom_id, subject, study, view, split, source image)
IMAGES = [
    ("02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", "10000032", "50414267", "PA", "train", "CT_small.dcm"),
    ("174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962", "10000032", "50414267", "LATERAL", "train", "CT_small.dcm"),
    ("2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab", "10000032", "53189527", "AP", "train", "MR_small.dcm"),
    ("e084de3b-be89b11e-20fe3f9f-9c8d8dfe-4cfd202c", "10000764", "57375967", "PA", "validate", "CT_small.dcm"),
    ("68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714", "10000898", "50771383", "PA", "test", "MR_small.dcm"),
    ("fffabebf-74fd3a1f-673b6b41-96ec0ac9-2ab69818", "10000898", "50771383", "LL", "test", None),  # no file
    ("ea030e7a-2e3b1346-bc518786-7a8fd698-f673b44c", "10000935", "51178377", "PA", "train", None),   # no file
]
REPORTS = {
    "50414267": "                                 FINAL REPORT\n EXAMINATION:  CHEST (PA AND LAT)\n\n INDICATION:  ___F with"
                " cough.\n\n FINDINGS: \n \n There is no focal consolidation, pleural effusion or pneumothorax.\n"
                " Heart size is normal.\n \n IMPRESSION: \n \n No acute cardiopulmonary process.\n",
    "53189527": " FINDINGS: Single AP view. Mild pulmonary edema,\n possibly small left effusion.\n\n IMPRESSION: Edema.\n",
    "57375967": " IMPRESSION:  Right lower lobe pneumonia.\n",
    "50771383": " FINDINGS:  Lungs are clear.\n IMPRESSION:  Normal chest.\n",
}
LABELS = {  # study -> {label: value}; missing = empty cell
    "50414267": {"No Finding": 1.0},
    "53189527": {"Edema": 1.0, "Pleural Effusion": -1.0, "Cardiomegaly": 0.0},
    "57375967": {"Pneumonia": 1.0, "Consolidation": -1.0},
    "50771383": {"No Finding": 1.0, "Support Devices": 0.0},
}


def write_gz_csv(path, header, rows):
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def read_gz_csv(path):
    with gzip.open(path, "rt", newline="") as f:
        return list(csv.DictReader(f))


EXTRA_TEXT = ["Small right pleural effusion.", "Mild cardiomegaly.", "Atelectasis at the left base.",
              "Pulmonary edema.", "No acute cardiopulmonary process.", "Right lower lobe pneumonia."]
EXTRA_LABEL = ["Pleural Effusion", "Cardiomegaly", "Atelectasis", "Edema", "No Finding", "Pneumonia"]


def cmd_make(root, extra="0"):
    """`extra` > 0 adds that many frontal training images, one study each, with a report and labels."""
    import pydicom
    from PIL import Image
    base = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
    os.makedirs(root, exist_ok=True)
    split_rows, meta_rows = [], []
    images = list(IMAGES)
    for e in range(int(extra)):
        subject, study = f"{11000000 + e}", f"{59000000 + e}"
        images.append((f"{e:08x}-0000-0000-0000-000000000000", subject, study, "PA", "train",
                       ["CT_small.dcm", "MR_small.dcm"][e % 2]))
        REPORTS[study] = f" FINDINGS: {EXTRA_TEXT[e % 6]} The lungs are otherwise clear.\n IMPRESSION: {EXTRA_TEXT[e % 6]}\n"
        LABELS[study] = {EXTRA_LABEL[e % 6]: 1.0}
    for dicom_id, subject, study, view, split, src in images:
        split_rows.append([dicom_id, study, subject, split])
        meta_rows.append([dicom_id, subject, study, "CHEST (PA AND LAT)", view, 128, 128, 21800506, 213014.531,
                          "CHEST (PA AND LAT)", "postero-anterior", "Erect"])
        folder = os.path.join(root, "files", "p" + subject[:2], "p" + subject, "s" + study)
        os.makedirs(folder, exist_ok=True)
        if src:
            px = pydicom.dcmread(os.path.join(base, src)).pixel_array.astype(np.float64)
            px = np.roll(px, 5 * len(split_rows), axis=1)
            px = (255 * (px - px.min()) / (px.max() - px.min())).astype(np.uint8)
            Image.fromarray(px).save(os.path.join(folder, dicom_id + ".jpg"), quality=95)
    for study, text in REPORTS.items():
        subject = next(s for _, s, st, *_ in images if st == study)
        with open(os.path.join(root, "files", "p" + subject[:2], "p" + subject, "s" + study + ".txt"), "w") as f:
            f.write(text)
    write_gz_csv(os.path.join(root, "mimic-cxr-2.0.0-split.csv.gz"), ["dicom_id", "study_id", "subject_id", "split"],
                 split_rows)
    write_gz_csv(os.path.join(root, "mimic-cxr-2.0.0-metadata.csv.gz"), META, meta_rows)
    rows = []
    for study, labs in LABELS.items():
        subject = next(s for _, s, st, *_ in images if st == study)
        rows.append([subject, study] + ["" if l not in labs else f"{labs[l]:.1f}" for l in CHEXPERT])
    write_gz_csv(os.path.join(root, "mimic-cxr-2.0.0-chexpert.csv.gz"), ["subject_id", "study_id"] + CHEXPERT, rows)


def section(text, name):
    m = re.search(name + r":(.*?)(?=\n\s*[A-Z ]+:|\Z)", text, re.S)
    return " ".join(m.group(1).split()) if m else ""


def cmd_expect(root):
    split = read_gz_csv(os.path.join(root, "mimic-cxr-2.0.0-split.csv.gz"))
    view = {r["dicom_id"]: r["ViewPosition"] for r in read_gz_csv(os.path.join(root, "mimic-cxr-2.0.0-metadata.csv.gz"))}
    lab = {r["study_id"]: r for r in read_gz_csv(os.path.join(root, "mimic-cxr-2.0.0-chexpert.csv.gz"))}
    out = []
    for r in split:
        if view.get(r["dicom_id"]) not in ("PA", "AP"):
            continue
        sub, st = r["subject_id"], r["study_id"]
        img = os.path.join(root, "files", "p" + sub[:2], "p" + sub, "s" + st, r["dicom_id"] + ".jpg")
        if not os.path.exists(img):
            continue
        rep = os.path.join(root, "files", "p" + sub[:2], "p" + sub, "s" + st + ".txt")
        text = open(rep).read() if os.path.exists(rep) else ""
        row = lab.get(st)
        labels = [None if (row is None or row[l] == "" or float(row[l]) == -1.0) else float(row[l]) for l in CHEXPERT]
        out.append({"id": r["dicom_id"], "split": "val" if r["split"] == "validate" else r["split"], "patient": sub,
                    "image": img, "findings": section(text, "FINDINGS"), "impression": section(text, "IMPRESSION"),
                    "labels": labels})
    print(json.dumps({"labels": CHEXPERT, "items": out}))


if __name__ == "__main__":
    {"make": cmd_make, "expect": cmd_expect}[sys.argv[1]](*sys.argv[2:])
