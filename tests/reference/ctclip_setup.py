#!/usr/bin/env python3
"""Put CT-CLIP's source (ibrahimethemhamamci/CT-CLIP at the commit ctclip_reference.py names) where
the CT-CLIP tests read it, ~/.cache/biud/ctclip/<commit> (or $BIUD_CTCLIP_SRC), and install into
the running Python the PyPI packages its modules import (pinned: the versions the tests ran with;
vector-quantize-pytorch 1.1.2 is the version CT-CLIP's setup.py pins).

CT-CLIP is CC-BY-NC-SA licensed and not on PyPI: its code is fetched to your cache, never copied
into this repository.

  ~/.cache/biud/venv/bin/python tests/reference/ctclip_setup.py                # download the commit
  ~/.cache/biud/venv/bin/python tests/reference/ctclip_setup.py --from DIR     # a checkout / unpacked archive
"""
import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ctclip_reference import COMMIT, source_root  # noqa: E402

PACKAGES = ["vector-quantize-pytorch==1.1.2", "einops==0.8.2", "beartype==0.23.1", "pandas==3.1.1"]
NEEDED = ["transformer_maskgit/transformer_maskgit/ctvit.py", "transformer_maskgit/transformer_maskgit/attention.py",
          "CT_CLIP/ct_clip/ct_clip.py", "CT_CLIP/ct_clip/mlm.py", "CT_CLIP/ct_clip/visual_ssl.py",
          "scripts/data_inference_nii.py"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="src", help="a CT-CLIP checkout or unpacked archive of commit " + COMMIT)
    ap.add_argument("--no-pip", action="store_true", help="do not install the PyPI packages")
    a = ap.parse_args()
    dst = source_root()
    if a.src:
        missing = [p for p in NEEDED if not os.path.exists(os.path.join(a.src, p))]
        if missing:
            sys.exit(f"{a.src}: not a CT-CLIP checkout ({missing[0]} missing)")
        if os.path.abspath(a.src) != os.path.abspath(dst):
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(a.src, dst, ignore=shutil.ignore_patterns(".git", "figures", "*.png"))
    else:
        url = f"https://github.com/ibrahimethemhamamci/CT-CLIP/archive/{COMMIT}.tar.gz"
        print(f"downloading {url}")
        data = urllib.request.urlopen(url, timeout=120).read()
        tmp = dst + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            tf.extractall(tmp, filter="data")
        (top,) = os.listdir(tmp)
        shutil.rmtree(dst, ignore_errors=True)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.rename(os.path.join(tmp, top), dst)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"CT-CLIP source: {dst}")
    if not a.no_pip:
        subprocess.check_call([sys.executable, "-m", "pip", "install", *PACKAGES])


if __name__ == "__main__":
    main()
