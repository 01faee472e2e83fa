"""Runs every models_* reference that needs torch in one Python process (importing torch costs
seconds): <out>/bert (models_bert), <out>/torchvision (models_torchvision),
<out>/torchscript (models_torchscript).

usage: models_all.py OUT_DIR
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import models_bert  # noqa: E402
import models_torchscript  # noqa: E402
import models_torchvision  # noqa: E402


def main():
    out = sys.argv[1]
    for name, mod in (("bert", models_bert), ("torchvision", models_torchvision), ("torchscript", models_torchscript)):
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        sys.argv = [mod.__file__, d]
        mod.main()


if __name__ == "__main__":
    main()
