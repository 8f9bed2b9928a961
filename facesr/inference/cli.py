"""`facesr upscale`: the argparse parser and the command (exit codes: 0 all written, 1 some input
failed, 2 nothing could run)."""

from __future__ import annotations

import argparse
import sys
import warnings

from facesr.inference.errors import InferenceError
from facesr.inference.files import collect_inputs, upscale_files
from facesr.inference.loading import DEFAULT_MODEL, PickleLoadWarning, add_runtime_arguments, load


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "upscale",
        help="super-resolve face crops or the faces in whole photos",
        description="Upscale face crops (any size -> 16x16 LR -> 128x128 SR) or, with --faces auto, "
                    "detect, align, super-resolve and paste back every face of whole photos.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders (searched recursively)")
    p.add_argument("-o", "--out", required=True, help="output folder (PNG files, same relative names)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="checkpoint path, MLflow URI (models:/facesr-method1@champion, runs:/ID/model), MLflow "
                        "model folder, or a name (srresnet, method1, method2, a train variant: NAME.pt where dvc.yaml's "
                        f"stages write models; bicubic needs none) (default {DEFAULT_MODEL})")
    add_runtime_arguments(p)
    p.add_argument("--allow-pickle", action="store_true",
                   help="also load MLflow pytorch models, which are pickles (facesr registered those before "
                        "its weights-only models): unpickling runs any code the file holds, so only for a "
                        "model from a registry you trust")
    p.add_argument("--size", type=int, default=None, help="output size of face crops (resized after SR)")
    p.add_argument("--faces", choices=("crop", "auto"), default="crop",
                   help="crop: inputs are aligned face crops; auto: detect faces in whole photos")
    p.add_argument("--photo-scale", type=int, default=1,
                   help="--faces auto: enlarge the photo by this factor (bicubic) before pasting the faces "
                        "(the result may have at most Pillow's Image.MAX_IMAGE_PIXELS pixels, as inputs)")
    p.add_argument("--min-score", type=float, default=0.9, help="--faces auto: detector score threshold")
    p.add_argument("--compare", action="store_true", help="also write compare/NAME.png: LR | Bicubic | SR")
    p.add_argument("--save-parsing", action="store_true",
                   help="also write parsing/NAME.png: the predicted parsing maps over the SR (method1/2)")
    p.add_argument("--batch", type=int, default=16, help="faces per forward pass")
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default auto: cuda when available)")
    p.add_argument("--smoke-test", action="store_true",
                   help="run on at most 2 inputs (a quick check of model and paths)")
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    from facesr.faces import DetectorUnavailableError

    failure = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PickleLoadWarning)
        try:
            upscaler = load(args.model, device=args.device, allow_pickle=args.allow_pickle, runtime=args.runtime,
                            precision=args.precision)
        except (InferenceError, ValueError) as exc:
            failure = exc
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return 2
    inputs = args.inputs
    print(f"model: {upscaler.name} from {upscaler.source} on {upscaler.device} ({upscaler.runtime}, "
          f"{upscaler.precision.name})", file=sys.stderr)
    try:
        if args.smoke_test:
            items, _ = collect_inputs(inputs)
            inputs = [str(src) for src, _ in items[:2]] or inputs
        report = upscale_files(inputs, args.out, upscaler=upscaler, size=args.size, faces=args.faces,
                               compare=args.compare, save_parsing=args.save_parsing, batch=args.batch,
                               photo_scale=args.photo_scale, min_score=args.min_score)
    except (InferenceError, DetectorUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for src, found in report.faces.items():
        boxes = "; ".join(f"({', '.join(f'{v:.0f}' for v in f['box'])}) p={f['score']:.3f}" for f in found)
        print(f"{src}: {len(found)} face(s): {boxes}")
    extras = f" (+{len(report.extras)} compare/parsing)" if report.extras else ""
    print(f"wrote {len(report.written)} image(s) to {args.out}{extras}")
    if report.errors:
        print(f"{len(report.errors)} input(s) failed:", file=sys.stderr)
        for err in report.errors:
            print(f"  {err}", file=sys.stderr)
        return 1
    return 0
