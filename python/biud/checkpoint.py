"""Which checkpoint folder of a run to read: the rules of biud's train::CheckpointManager
(include/biud/train/Checkpoint.h).

<run>/checkpoints/latest is a relative symbolic link to the newest complete folder (runs written
before the link hold a text file with the folder's name). A folder is complete when it has
state.json (saves are written to step_N.tmp-PID and renamed). A complete folder of a later step
whose state.json is newer than `latest` itself wins (the process died between renaming it into
place and moving `latest`); without a usable `latest`, the highest complete step.
"""
import os
from typing import List, Optional, Tuple


def complete_checkpoints(ck_dir: str) -> List[str]:
    """Complete checkpoint folders of <run>/checkpoints, oldest first."""
    if not os.path.isdir(ck_dir):
        return []
    out = []
    for name in os.listdir(ck_dir):
        p = os.path.join(ck_dir, name)
        if (name.startswith("step_") and ".tmp" not in name and ".old-" not in name and os.path.isdir(p)
                and not os.path.islink(p) and os.path.exists(os.path.join(p, "state.json"))):
            out.append(p)
    return sorted(out)


def pointer(ck_dir: str) -> Optional[str]:
    """The folder `latest` names (link or text file) when it is a complete checkpoint."""
    link = os.path.join(ck_dir, "latest")
    if os.path.islink(link):
        name = os.readlink(link)
    elif os.path.isfile(link):
        with open(link, encoding="utf-8") as f:
            name = f.read().rstrip("\n\r ")
    else:
        return None
    if not name:
        return None
    p = name if os.path.isabs(name) else os.path.join(ck_dir, name)
    return p if os.path.exists(os.path.join(p, "state.json")) else None


def latest_checkpoint(ck_dir: str) -> Optional[str]:
    all_ = complete_checkpoints(ck_dir)
    named = pointer(ck_dir)
    if named is None:
        return all_[-1] if all_ else None
    link_time = os.lstat(os.path.join(ck_dir, "latest")).st_mtime_ns
    for p in reversed(all_):
        if os.path.basename(p) <= os.path.basename(os.path.normpath(named)):
            break
        if os.stat(os.path.join(p, "state.json")).st_mtime_ns > link_time:
            return p
    return named


def locate(path: str) -> Tuple[str, str]:
    """(checkpoint folder, run folder) of a run folder (its newest checkpoint) or a checkpoint
    folder (`run/checkpoints/step_*`, or `run/checkpoints/latest`)."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"`{path}` is not a folder (give a biud run folder or a checkpoint folder)")
    if os.path.exists(os.path.join(path, "state.json")) or os.path.exists(os.path.join(path, "config.json")) and \
            os.path.exists(os.path.join(path, "model.safetensors")):
        real = os.path.realpath(path)
        return real, os.path.dirname(os.path.dirname(real))
    ck = latest_checkpoint(os.path.join(path, "checkpoints"))
    if ck is None:
        raise FileNotFoundError(f"`{path}` holds no checkpoint (expected {path}/checkpoints/step_*/ with state.json): "
                                "train it first")
    return os.path.realpath(ck), path
