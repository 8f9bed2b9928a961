"""`facesr serve MODEL`: an HTTP server that takes a face crop and answers its SR face, on Ray Serve.

`POST /` with a PNG or JPEG as the request body (Content-Type image/png or image/jpeg) answers the
128x128 SR face as image/png; `GET /healthz` answers {"status": "ok", "model": ...}. Requests that
arrive together run as one forward pass (`ray.serve.batch`). Ray Serve rather than `mlflow models
serve`: Ray is already the stack's cluster runtime, Serve batches requests dynamically, and MLflow's
scoring server takes JSON or tabular input, not an image body (docs/upscale.md "Serving").

Safe by default: the server listens on 127.0.0.1 and asks for a bearer token ($FACESR_SERVE_TOKEN,
else one made at start, written to a 0600 file and printed); `--no-auth` turns that off, on a
loopback address only unless `--insecure` says otherwise. Bad input gets a 4xx with a JSON body
{"error": ...}, never a crash: the body is capped in bytes while it is read, and in pixels from the
image header before any pixel is decoded (`read_image`, the decoding policy of `facesr upscale`).

Only the standard library, Pillow and light facesr modules are imported at module level (`facesr.cli`
imports this); Ray, starlette and torch load when the server starts.
"""

from __future__ import annotations

import argparse
import hmac
import io
import ipaddress
import os
import secrets
import signal
import socket
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from facesr.data.imageio import TooManyPixels
from facesr.fileio import atomic_open
from facesr.inference.errors import BadImageError, InferenceError
from facesr.inference.images import read_image
from facesr.inference.loading import DEFAULT_MODEL, add_runtime_arguments, load

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# A face crop needs far less; the caps keep one request from holding the server's memory.
DEFAULT_MAX_BYTES = 20 * 2**20
DEFAULT_MAX_PIXELS = 4096 * 4096
TOKEN_ENV = "FACESR_SERVE_TOKEN"
IMAGE_TYPES = ("image/png", "image/jpeg")
# What the body must start with, checked before Pillow sees it, so only its PNG and JPEG decoders ever run.
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
APP_NAME = "facesr"


class ServeOptionError(InferenceError):
    """A `facesr serve` option that cannot be used (an unauthenticated server on a network address, a bad limit)."""


class RequestRejected(InferenceError):
    """A request answered with a 4xx: `status` and a message that says what was wrong with it."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ServeConfig:
    """What the server replica needs: the model source (a path made absolute, a URI or a name resolved in
    the driver's folder), how it runs (device, runtime, precision: as `load` takes them), the token (None:
    no auth) and the limits of a request and a batch."""

    source: str
    device: str
    runtime: str
    precision: str
    allow_pickle: bool
    token: str | None
    max_bytes: int
    max_pixels: int
    max_batch_size: int
    batch_wait_s: float


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve a model over HTTP (Ray Serve): POST a face crop, get the SR face as PNG",
        description="Serve MODEL on http://HOST:PORT/ with Ray Serve and dynamic batching. POST a PNG or JPEG "
                    "face crop as the body (Content-Type image/png or image/jpeg) with 'Authorization: Bearer "
                    f"TOKEN'; the answer is the 128x128 SR face as image/png. The token is ${TOKEN_ENV}, else one "
                    "made at start, written to --token-file (mode 0600) and printed. GET /healthz needs no token.",
    )
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL, metavar="MODEL",
                   help="what `facesr upscale --model` takes: a generator file, an MLflow URI or model folder, or a "
                        f"name (default {DEFAULT_MODEL})")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    p.add_argument("--token-file", type=Path, default=None,
                   help=f"where a token made at start is written, mode 0600 (default {default_token_file()}); "
                        f"unused when ${TOKEN_ENV} is set")
    p.add_argument("--no-auth", action="store_true",
                   help="accept requests without a token (refused on a non-loopback --host unless --insecure)")
    p.add_argument("--insecure", action="store_true",
                   help="with --no-auth: allow a non-loopback --host, i.e. anyone who can reach it may use it")
    add_runtime_arguments(p)
    p.add_argument("--allow-pickle", action="store_true",
                   help="also load pickled MLflow pytorch models (see `facesr upscale --help`)")
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default auto: cuda when available)")
    p.add_argument("--num-cpus", type=int, default=2,
                   help="CPUs of the local Ray instance, all given to the model's replica (default 2)")
    p.add_argument("--max-batch-size", type=int, default=16, help="most faces per forward pass (default 16)")
    p.add_argument("--batch-wait-ms", type=float, default=10.0,
                   help="how long a request waits for others to fill its batch (default 10 ms)")
    p.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                   help=f"largest request body in bytes, else 413 (default {DEFAULT_MAX_BYTES})")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"most pixels (width x height) of an input image, else 413 (default {DEFAULT_MAX_PIXELS})")
    p.set_defaults(func=run_cli)


def default_token_file() -> Path:
    """Where a token made at start is written: $FACESR_HOME/serve-token, else ~/.cache/facesr/serve-token."""
    home = os.environ.get("FACESR_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "facesr") / "serve-token"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_options(args: argparse.Namespace) -> None:
    """ServeOptionError for options that cannot be served as given."""
    if args.no_auth and not is_loopback(args.host) and not args.insecure:
        raise ServeOptionError(
            f"--no-auth on --host {args.host} would let anyone who can reach it use the server; keep the token, "
            "or listen on 127.0.0.1, or add --insecure if that is really what you want")
    if args.insecure and not args.no_auth:
        raise ServeOptionError("--insecure only goes with --no-auth (a server with a token needs no override)")
    if not 0 < args.port < 65536:
        raise ServeOptionError(f"--port {args.port}: not a TCP port (1-65535)")
    for name in ("num_cpus", "max_batch_size", "max_bytes", "max_pixels"):
        if getattr(args, name) < 1:
            raise ServeOptionError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")
    if args.batch_wait_ms < 0:
        raise ServeOptionError(f"--batch-wait-ms {args.batch_wait_ms}: must be >= 0")


def check_port_free(host: str, port: int) -> None:
    """ServeOptionError when `host:port` cannot be bound: Ray Serve's proxy would only retry it in the background."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ServeOptionError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port "
                                   "or --host") from exc


def server_token(token_file: Path | None) -> tuple[str, str | None]:
    """The bearer token and the file it was written to: $FACESR_SERVE_TOKEN as is (no file), else a new
    random token written to `token_file` (default `default_token_file()`) readable by this user only."""
    given = os.environ.get(TOKEN_ENV, "").strip()
    if given:
        return given, None
    token = secrets.token_urlsafe(32)
    path = token_file or default_token_file()
    with atomic_open(path, "w") as fh:
        # before the token is in it: the file is never readable by others, not even for a moment
        os.fchmod(fh.fileno(), 0o600)
        fh.write(token + "\n")
    return token, str(path)


def check_auth(authorization: str | None, token: str | None) -> None:
    """RequestRejected 401 unless the Authorization header is `Bearer <token>` (anything goes when token is None)."""
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    # compare_digest: the time taken does not tell how much of a guess was right
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise RequestRejected(401, "missing or wrong token: send the header 'Authorization: Bearer <token>'")


def check_headers(content_type: str | None, content_length: str | None, max_bytes: int) -> None:
    """RequestRejected 415 for a type other than PNG/JPEG, 413 for a declared length over `max_bytes`."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind not in IMAGE_TYPES:
        raise RequestRejected(415, f"Content-Type {kind or '(none)'} is not supported: send the image bytes as the "
                                   f"body with Content-Type {' or '.join(IMAGE_TYPES)}")
    if content_length is not None:
        try:
            length = int(content_length)
        except ValueError:
            raise RequestRejected(400, f"Content-Length {content_length!r} is not a number") from None
        if length > max_bytes:
            raise RequestRejected(413, f"body of {length} bytes is over the limit of {max_bytes} bytes")


def decode_face(body: bytes, max_pixels: int) -> tuple[Image.Image, list[str]]:
    """The face in a request body as 8-bit RGB with the notes of `read_image` (and one for a crop that is not
    square, as `facesr upscale` gives), or RequestRejected: 413 for an image over `max_pixels` (from its
    header, before decoding), 400 for anything else unusable."""
    if not body.startswith(_SIGNATURES):
        raise RequestRejected(400, "request body: not a PNG or JPEG image" if body else "request body: empty")
    # read_image opens files: the body goes to a private temp file so that one decoder serves both commands
    with tempfile.TemporaryDirectory(prefix="facesr-serve-") as tmp:
        path = Path(tmp) / "body"
        path.write_bytes(body)
        try:
            loaded = read_image(path, max_pixels=max_pixels)
        except BadImageError as exc:
            status = 413 if isinstance(exc.__cause__, TooManyPixels) else 400
            raise RequestRejected(status, f"request body: {str(exc).removeprefix(f'{path}: ')}") from exc
    w, h = loaded.image.size
    if w != h:
        loaded.notes.append(f"{w}x{h} is not square; resized to a square crop")
    return loaded.image, loaded.notes


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


async def read_body(request, max_bytes: int) -> bytes:
    """The body of a starlette request, read in chunks and refused (413) as soon as it passes `max_bytes`:
    a client that lies about Content-Length, or sends none, cannot make the server hold more."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestRejected(413, f"body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class FaceSRServer:
    """The Ray Serve replica: the model, loaded once, and the HTTP routes. `build_app` makes it a deployment."""

    def __init__(self, config: ServeConfig):
        from ray import serve

        self.config = config
        self.upscaler = load(config.source, device=config.device, allow_pickle=config.allow_pickle,
                             runtime=config.runtime, precision=config.precision)
        # serve.batch around the bound method, so that the batch limits come from the command line
        self.batched = serve.batch(max_batch_size=config.max_batch_size,
                                   batch_wait_timeout_s=config.batch_wait_s)(self.upscale_faces)

    async def upscale_faces(self, faces: list[Image.Image]) -> list[tuple[bytes, int]]:
        """One forward pass over the faces of the requests batched together: each one's SR face as PNG
        bytes, with the size of the batch it ran in."""
        srs = self.upscaler.upscale_batch(faces, batch_size=len(faces))
        return [(png_bytes(sr), len(faces)) for sr in srs]

    async def __call__(self, request) -> Any:
        import asyncio

        from starlette.responses import JSONResponse, Response

        path = request.url.path
        if path == "/healthz":
            return JSONResponse({"status": "ok", "model": self.upscaler.name})
        if path != "/":
            return JSONResponse({"error": f"no route {path}: POST an image to /, GET /healthz"}, status_code=404)
        if request.method != "POST":
            return JSONResponse({"error": f"{request.method} /: POST an image"}, status_code=405,
                                headers={"Allow": "POST"})
        try:
            check_auth(request.headers.get("authorization"), self.config.token)
            check_headers(request.headers.get("content-type"), request.headers.get("content-length"),
                          self.config.max_bytes)
            body = await read_body(request, self.config.max_bytes)
            # decoding is CPU work: off the event loop, so that other requests keep joining the batch
            face, notes = await asyncio.to_thread(decode_face, body, self.config.max_pixels)
        except RequestRejected as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)
        png, batch = await self.batched(face)
        headers = {"X-Facesr-Model": self.upscaler.name, "X-Facesr-Batch": str(batch)}
        if notes:
            headers["X-Facesr-Notes"] = "; ".join(notes)
        return Response(png, media_type="image/png", headers=headers)


def build_app(config: ServeConfig, num_cpus: int):
    """The Serve application: one replica of FaceSRServer with every CPU of the instance (and the GPU on cuda)."""
    from ray import serve

    actor = {"num_cpus": num_cpus}
    if config.device.startswith("cuda"):
        actor["num_gpus"] = 1  # Ray hides the GPUs from an actor that does not ask for one
    deployment = serve.deployment(FaceSRServer, name="FaceSRServer", num_replicas=1, ray_actor_options=actor,
                                  max_ongoing_requests=4 * config.max_batch_size)
    return deployment.bind(config)


def run_cli(args: argparse.Namespace) -> int:
    from facesr.device import DeviceError, resolve_device

    try:
        check_options(args)
        device = resolve_device(args.device, setting="--device")
        # loaded here first: a bad source is an error now, not a replica that Serve restarts again and again
        upscaler = load(args.model, device=device, allow_pickle=args.allow_pickle, runtime=args.runtime,
                        precision=args.precision)
        check_port_free(args.host, args.port)
    except (DeviceError, InferenceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    source = upscaler.source
    if Path(source).exists():
        source = str(Path(source).resolve())  # the replica's working folder need not be this one
    del upscaler
    token, token_file = (None, None) if args.no_auth else server_token(args.token_file)
    config = ServeConfig(source=source, device=device, runtime=args.runtime, precision=args.precision,
                         allow_pickle=args.allow_pickle, token=token,
                         max_bytes=args.max_bytes, max_pixels=args.max_pixels, max_batch_size=args.max_batch_size,
                         batch_wait_s=args.batch_wait_ms / 1000.0)
    if token is None:
        print("warning: --no-auth: anyone who can reach the server may use it", file=sys.stderr)
    elif token_file:
        print(f"token: {token} (written to {token_file})", file=sys.stderr)
    else:
        print(f"token: from ${TOKEN_ENV}", file=sys.stderr)
    return serve_until_stopped(config, host=args.host, port=args.port, num_cpus=args.num_cpus)


def serve_until_stopped(config: ServeConfig, *, host: str, port: int, num_cpus: int) -> int:
    """Start Ray (a local instance of `num_cpus` CPUs, or $RAY_ADDRESS) and Serve on host:port, serve until
    SIGINT or SIGTERM, then shut Serve and the local instance down (no Ray process is left behind)."""
    import ray
    from ray import serve

    from facesr.services import init_ray

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in signals}
    for s in signals:
        signal.signal(s, on_signal)
    started = False
    try:
        started = init_ray(num_cpus=num_cpus, logging_level="WARNING")
        for s in signals:  # ray.init puts in a SIGTERM handler of its own
            signal.signal(s, on_signal)
        if not stop.is_set():
            serve.start(proxy_location="HeadOnly", http_options={"host": host, "port": port},
                        logging_config={"log_level": "WARNING"})
            serve.run(build_app(config, num_cpus), name=APP_NAME, route_prefix="/")
            print(f"serving on http://{host}:{port}/ (POST an image; GET /healthz); Ctrl-C or SIGTERM stops",
                  file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
        print("stopping", file=sys.stderr, flush=True)
    finally:
        if ray.is_initialized():
            serve.shutdown()
        if started:
            ray.shutdown()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
