"""A killed merge_masks or downscale leaves `.<out>.tmp-*` / `.<out>.old-*` folders: the next run sweeps them."""

from __future__ import annotations

from pathlib import Path

from demo_params import demo_downscale, demo_merge

from facesr.data.downscale import downscale
from facesr.data.merge import merge_masks

PARTS = ["skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip", "l_ear", "r_ear"]


def _litter(parent: Path, name: str) -> list[str]:
    """Make what a killed writer of `name` leaves, and look-alikes that are not its; return the latter."""
    for stale in (f".{name}.tmp-k1ll3d", f".{name}.old-1234"):
        (parent / stale / "sub").mkdir(parents=True)
    (parent / f".{name}.tmp-file").write_bytes(b"half a file")
    kept = [f".{name}x.tmp-1", f"{name}.tmp-1", f".{name}.tmpx"]
    for k in kept:
        (parent / k).mkdir()
    return kept


def test_merge_and_downscale_sweep_a_killed_runs_leftovers(raw, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    kept = _litter(work, "merged") + _litter(work, "prep")
    merge_masks(raw, work / "merged", parts=PARTS, **demo_merge(workers=1))
    assert sorted(p.name for p in work.iterdir()) == sorted(["merged", *kept, ".prep.tmp-k1ll3d", ".prep.old-1234",
                                                              ".prep.tmp-file"])
    downscale(raw, work / "merged", work / "prep", **demo_downscale(workers=1))
    assert sorted(p.name for p in work.iterdir()) == sorted(["merged", "prep", *kept])
