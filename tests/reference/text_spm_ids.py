#!/usr/bin/env python3
"""Optional reference for SentencePiece ids: encode each line of INPUT with the Python
`sentencepiece` package and print one JSON list of ids per line. Prints `SKIP` when the package is
not installed (it is not in requirements; the C++ test then skips the comparison).

Usage: text_spm_ids.py MODEL INPUT
"""
import json
import sys

try:
    import sentencepiece as spm
except ImportError:
    print("SKIP")
    sys.exit(0)

sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
with open(sys.argv[2], encoding="utf-8") as f:
    for line in f.read().split("\n"):
        if line:
            print(json.dumps(sp.encode(line)))
