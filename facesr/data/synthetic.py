"""Procedural faces in the official CelebAMask-HQ layout: the offline demo source and the test fixture.

Each face is drawn with numpy from random parameters (pose, proportions, skin tone, light, hair,
accessories) in a fixed painter's order; every part is a shape with an antialiased edge, and the
part's mask is exactly where that part ends up on top (its edge at alpha 0.5). Masks are therefore
disjoint, like the release's (whose per-part files come from one label map). Shading (light on an
ellipsoid), low-frequency colour fields, hair strands and skin grain give SR models real texture to
learn; at 16x16 the layout (dark eyes and brows, lips, hair frame) still reads as a face.

Determinism: all randomness comes from `numpy.random.default_rng([seed, id])`, drawn before any
rendering, so a face depends only on (seed, id) and files are byte-identical across runs.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from facesr.data.layout import IMG_DIR, MASK_DIR, MASK_SIZE, TOP, image_path, mask_path

SKIN_TONES = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 125], [198, 134, 90],
                       [160, 104, 66], [120, 78, 50], [88, 58, 40]], dtype=np.float64)
HAIR_COLOURS = np.array([[20, 16, 14], [60, 40, 28], [110, 74, 44], [170, 130, 80], [215, 190, 140],
                         [140, 50, 30], [120, 120, 120]], dtype=np.float64)
IRIS_COLOURS = np.array([[70, 45, 25], [40, 25, 15], [70, 110, 150], [80, 110, 70], [110, 90, 60]],
                        dtype=np.float64)
# Label codes of the painter's map, in release part names (0 = background).
LABELS = ("background", "cloth", "neck", "hair", "l_ear", "r_ear", "skin", "nose", "l_eye", "r_eye",
          "l_brow", "r_brow", "u_lip", "l_lip", "mouth", "eye_g", "hat", "neck_l", "ear_r")


def draw_params(seed: int, idx: int) -> dict:
    """Every random choice of one face, drawn up front (rendering itself is deterministic)."""
    rng = np.random.default_rng([seed, idx])
    u = rng.uniform
    tone = u(0, len(SKIN_TONES) - 1)
    lo = int(tone)
    skin = SKIN_TONES[lo] * (1 - (tone - lo)) + SKIN_TONES[min(lo + 1, len(SKIN_TONES) - 1)] * (tone - lo)
    return {
        "angle": u(-0.2, 0.2), "shift": u(-0.06, 0.06, 2), "scale": u(0.88, 1.08), "yaw": u(-0.08, 0.08),
        "face_a": u(0.47, 0.58), "face_b": u(0.62, 0.74), "jaw": u(0.0, 0.25),
        "skin": skin, "light": u(-0.6, 0.6, 2), "grain": u(2.0, 6.0),
        "hair": HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * u(0.8, 1.2),
        "hair_long": u(0, 1) < 0.5, "hairline": u(-0.52, -0.3), "part": u(-0.3, 0.3),
        "hair_volume": u(0.05, 0.18), "ears": u(0, 1) < 0.7, "earring": u(0, 1) < 0.15,
        "eye_y": u(-0.1, 0.0), "eye_dx": u(0.19, 0.25), "eye_a": u(0.075, 0.1), "eye_b": u(0.03, 0.05),
        "iris": IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))], "gaze": u(-0.3, 0.3, 2),
        "brow_y": u(-0.24, -0.17), "brow_b": u(0.018, 0.035), "brow_tilt": u(-0.2, 0.25),
        "nose_len": u(0.14, 0.2), "nose_w": u(0.06, 0.09), "mouth_y": u(0.34, 0.42),
        "mouth_w": u(0.13, 0.2), "lip_u": u(0.03, 0.055), "lip_l": u(0.04, 0.07),
        "mouth_open": max(0.0, u(-0.02, 0.03)), "lip": np.array([170, 70, 80]) * u(0.75, 1.1),
        "glasses": u(0, 1) < 0.15, "hat": u(0, 1) < 0.1, "hat_colour": u(20, 235, 3),
        "necklace": u(0, 1) < 0.08, "cloth": u(20, 235, 3), "bg": u(0, 255, (2, 3)),
        "bg_dir": u(0, 2 * math.pi), "noise": rng.integers(0, 2**31, 6),
    }


def _field(seed: int, shape: tuple[int, int], size: int) -> np.ndarray:
    """Smooth random field in [-1, 1]: a small random grid upsampled bicubically (PIL, deterministic)."""
    g = np.random.default_rng(int(seed)).uniform(0, 255, shape).astype(np.uint8)
    big = np.asarray(Image.fromarray(g).resize((size, size), Image.BICUBIC), dtype=np.float64)
    return big / 127.5 - 1.0


class _Window:
    """The pixels around one shape: a bounding box of the canvas and the face-frame coords in it.

    Drawing each part inside its own box instead of the whole canvas makes a face ~5x cheaper.
    """

    def __init__(self, cv: dict, cx: float, cy: float, r: float):
        p, px = cv["p"], cv["px"]
        ca, sa = math.cos(p["angle"]), math.sin(p["angle"])
        u = (ca * cx - sa * cy) * p["scale"] + p["shift"][0]
        v = (sa * cx + ca * cy) * p["scale"] + p["shift"][1]
        rad = r * p["scale"] * px + 3
        size = cv["size"]
        x0, x1 = max(0, int((u + 1) * px - rad)), min(size, int(math.ceil((u + 1) * px + rad)))
        y0, y1 = max(0, int((v + 1) * px - rad)), min(size, int(math.ceil((v + 1) * px + rad)))
        self.sl = (slice(y0, max(y0, y1)), slice(x0, max(x0, x1)))
        self.x, self.y = cv["x"][self.sl], cv["y"][self.sl]
        self.low, self.grain = cv["low"][self.sl], cv["grain"][self.sl]
        self.unit_px = cv["unit_px"]

    def ellipse(self, cx, cy, a, b, tilt=0.0):
        """(e, d): normalised radius and signed distance to the edge in pixels (approx.)."""
        c, s = math.cos(tilt), math.sin(tilt)
        ex = (c * (self.x - cx) + s * (self.y - cy)) / a
        ey = (-s * (self.x - cx) + c * (self.y - cy)) / b
        e = np.sqrt(ex * ex + ey * ey)
        return e, (1.0 - e) * min(a, b) * self.unit_px


def render(p: dict, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB image, uint8 label map of LABELS codes), both (size, size)."""
    px = size / 2.0  # pixels per unit: the canvas spans [-1, 1]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    u = (xx + 0.5) / px - 1.0
    v = (yy + 0.5) / px - 1.0
    ca, sa = math.cos(p["angle"]), math.sin(p["angle"])
    du, dv = (u - p["shift"][0]) / p["scale"], (v - p["shift"][1]) / p["scale"]
    nz = p["noise"]
    cv = {
        "p": p, "px": px, "size": size, "unit_px": px * p["scale"],
        "x": ca * du + sa * dv, "y": -sa * du + ca * dv,  # face frame: upright, centred, unit scale
        "low": _field(nz[0], (6, 6), size),
        "grain": np.random.default_rng(int(nz[1])).normal(0, 1, (size, size)),
    }
    unit_px = cv["unit_px"]
    img = np.zeros((size, size, 3))
    label = np.zeros((size, size), dtype=np.uint8)
    lx, ly = p["light"]

    def paint(w, d, colour, name, where=None):
        alpha = np.clip(0.5 + d, 0.0, 1.0)
        inside = d > 0
        if where is not None:
            alpha = alpha * where
            inside &= where > 0.5
        colour = np.asarray(colour, dtype=np.float64)
        if colour.ndim == 1:
            colour = colour[None, None, :]
        sub = img[w.sl]
        sub[:] = sub * (1 - alpha[..., None]) + colour * alpha[..., None]
        label[w.sl][inside] = LABELS.index(name)

    def shaded(w, base, e, amount=0.45, texture=1.0):
        nzz = np.sqrt(np.clip(1 - e * e, 0, 1))
        light = 0.62 + amount * (0.55 * nzz + 0.45 * (lx * w.x + ly * w.y)) + 0.05 * texture * w.low
        return np.clip(base[None, None, :] * light[..., None] + p["grain"] * texture * w.grain[..., None], 0, 255)

    # background: a gradient between two colours with soft blobs
    t = (math.cos(p["bg_dir"]) * u + math.sin(p["bg_dir"]) * v + 1.5) / 3.0
    bg = p["bg"][0] * (1 - t[..., None]) + p["bg"][1] * t[..., None]
    img[:] = bg * (1 + 0.12 * _field(nz[2], (4, 4), size))[..., None]
    strands = _field(nz[3], (8, 96), size)
    hair_tex = p["hair"][None, None, :] * (0.8 + 0.25 * strands[..., None]) + 4 * cv["grain"][..., None]
    # hair behind the head (long hair reaches the shoulders)
    hv = p["hair_volume"]
    ha, hb = p["face_a"] + hv, p["face_b"] + hv * 0.8
    w = _Window(cv, 0, -0.08, max(ha, hb))
    e, d = w.ellipse(0, -0.08, ha, hb)
    paint(w, d, hair_tex[w.sl], "hair")
    if p["hair_long"]:
        w = _Window(cv, 0, 0.35, 0.9)
        e2, d2 = w.ellipse(0, 0.35, ha + 0.05, 0.75)
        paint(w, np.minimum(d2, (0.85 - w.y) * unit_px), hair_tex[w.sl], "hair")
    # neck and cloth
    w = _Window(cv, 0, 0.7, 0.55)
    neck_d = np.minimum((0.2 - np.abs(w.x)) * unit_px, (w.y - 0.2) * unit_px)
    paint(w, neck_d, shaded(w, p["skin"] * 0.85, np.clip(np.abs(w.x) / 0.2, 0, 1), 0.35), "neck")
    if p["necklace"]:
        w = _Window(cv, 0, 0.72, 0.22)
        e, d = w.ellipse(0, 0.72, 0.2, 0.12)
        paint(w, np.minimum(d, -(e - 0.85) * 0.1 * unit_px), np.array([212, 175, 55]), "neck_l")
    w = _Window(cv, 0, 1.55, 1.0)
    e, d = w.ellipse(0, 1.55, 1.0, 0.72)
    cloth = p["cloth"][None, None, :] * (0.85 + 0.15 * _field(nz[4], (5, 5), size)[w.sl][..., None])
    paint(w, d, cloth, "cloth")
    # ears, just outside the cheeks
    if p["ears"]:
        for side, name in ((-1, "r_ear"), (1, "l_ear")):
            ex = side * (p["face_a"] + 0.015)
            w = _Window(cv, ex, 0.05, 0.2)
            e, d = w.ellipse(ex, 0.02, 0.085, 0.15, side * 0.2)
            paint(w, d, shaded(w, p["skin"] * 0.95, e, 0.4), name)
            if p["earring"]:
                e2, d2 = w.ellipse(ex + side * 0.01, 0.19, 0.025, 0.025)
                paint(w, d2, np.array([230, 210, 120]), "ear_r")
    # face, with a slightly squarer jaw for some
    w = _Window(cv, 0, 0.04, max(p["face_a"], p["face_b"]))
    e, d = w.ellipse(0, 0.04, p["face_a"], p["face_b"])
    jaw = p["jaw"] * np.clip(w.y, 0, 1)
    ef = e * (1 - jaw * 0.25 * (1 - np.abs(w.x) / p["face_a"]))
    d = (1 - ef) * min(p["face_a"], p["face_b"]) * unit_px
    paint(w, d, shaded(w, p["skin"], np.clip(ef, 0, 1)), "skin")
    yaw = p["yaw"]
    # nose: a soft shadow on the light-away side, two nostrils
    nl, nw = p["nose_len"], p["nose_w"]
    w = _Window(cv, yaw * 1.3, 0.02 + nl * 0.55, nl + 0.02)
    e, d = w.ellipse(yaw * 1.3, 0.02 + nl * 0.55, nw, nl)
    side = np.clip((w.x - yaw * 1.3) / nw, -1, 1)
    nose_col = p["skin"][None, None, :] * (0.95 + 0.1 * side[..., None] * lx - 0.08 * (1 - e[..., None]))
    nose_col = nose_col * (1 + 0.04 * w.low[..., None]) + p["grain"] * w.grain[..., None]
    for s in (-1, 1):
        en, _ = w.ellipse(yaw * 1.3 + s * nw * 0.45, 0.02 + nl * 1.35, nw * 0.28, nl * 0.12)
        nose_col = nose_col * (1 - 0.5 * np.clip(1.3 - en, 0, 1)[..., None])
    paint(w, d, np.clip(nose_col, 0, 255), "nose")
    # eyes: sclera, iris, pupil, highlight, a dark upper lid
    for s, name in ((-1, "r_eye"), (1, "l_eye")):
        cx, cy = s * p["eye_dx"] + yaw, p["eye_y"]
        a, b = p["eye_a"], p["eye_b"]
        w = _Window(cv, cx, cy, a + 0.01)
        e, d = w.ellipse(cx, cy, a, b, -s * 0.08)
        ix, iy = cx + p["gaze"][0] * a * 0.4, cy + p["gaze"][1] * b * 0.3
        ei, _ = w.ellipse(ix, iy, b * 0.95, b * 0.95)
        col = np.broadcast_to(np.array([235.0, 232, 225]), (*e.shape, 3)).copy()
        iris = np.clip(1.5 - ei * 1.5, 0, 1)[..., None]
        col = col * (1 - iris) + p["iris"][None, None, :] * (0.8 + 0.4 * ei[..., None]) * iris
        pupil = np.clip((0.42 - ei) * 12, 0, 1)[..., None]
        col = col * (1 - pupil) + 12 * pupil
        eh, _ = w.ellipse(ix + b * 0.3, iy - b * 0.3, b * 0.18, b * 0.18)
        col = col + 200 * np.clip((1 - eh) * 4, 0, 1)[..., None]
        lid = np.clip(1 - np.abs(e - 0.92) * 8, 0, 1) * (w.y < cy)
        col = col * (1 - 0.8 * lid[..., None])
        paint(w, d, np.clip(col, 0, 255), name)
    # brows, a little darker than the hair
    for s, name in ((-1, "r_brow"), (1, "l_brow")):
        cx, cy = s * (p["eye_dx"] + 0.01) + yaw, p["brow_y"] + p["eye_y"] * 0.5
        w = _Window(cv, cx, cy, p["eye_a"] + 0.07)
        e, d = w.ellipse(cx, cy, p["eye_a"] + 0.05, p["brow_b"], -s * p["brow_tilt"])
        paint(w, d, np.clip(p["hair"] * 0.7 + 3 * w.grain[..., None], 0, 255), name)
    # lips and the open mouth between them
    my, mw = p["mouth_y"], p["mouth_w"]
    gap = p["mouth_open"]
    lip = np.clip(p["lip"] * 0.6 + p["skin"] * 0.4, 0, 255)
    w = _Window(cv, yaw, my, mw + 0.02)
    e, d = w.ellipse(yaw, my - gap / 2, mw, p["lip_u"])
    paint(w, d, shaded(w, lip * 0.92, e, 0.3, 0.5), "u_lip",
          where=np.clip((my - gap / 2 - w.y) * unit_px + 0.5, 0, 1))
    e, d = w.ellipse(yaw, my + gap / 2, mw * 0.92, p["lip_l"])
    paint(w, d, shaded(w, lip, e, 0.3, 0.5), "l_lip", where=np.clip((w.y - my - gap / 2) * unit_px + 0.5, 0, 1))
    if gap > 0.004:
        e, d = w.ellipse(yaw, my, mw * 0.85, gap / 2 + 0.004)
        paint(w, d, np.array([60.0, 20, 25]) + 30 * np.clip(1 - e, 0, 1)[..., None], "mouth")
    # hair over the forehead, from a curved hairline with a parting
    w = _Window(cv, 0, -0.08, max(ha, hb))
    hairline = p["hairline"] + 0.12 * (w.x / p["face_a"]) ** 2 + 0.06 * np.exp(-((w.x - p["part"]) / 0.08) ** 2)
    e, d = w.ellipse(0, -0.08, ha, hb)
    paint(w, np.minimum(d, (hairline - w.y) * unit_px), hair_tex[w.sl], "hair")
    if p["glasses"]:
        w = _Window(cv, yaw, p["eye_y"], p["eye_dx"] + p["eye_a"] + 0.08)
        rim = np.zeros_like(w.x)
        for s in (-1, 1):
            ga, gb = p["eye_a"] + 0.05, p["eye_b"] + 0.045
            e, d = w.ellipse(s * p["eye_dx"] + yaw, p["eye_y"], ga, gb)
            rim = np.maximum(rim, np.clip(1 - np.abs(e - 1) * min(ga, gb) * unit_px / 2.5, 0, 1))
        bridge = (np.abs(w.x - yaw) < p["eye_dx"] - p["eye_a"] - 0.04) & (np.abs(w.y - p["eye_y"] + 0.02) < 0.008)
        rim = np.maximum(rim, bridge.astype(np.float64))
        paint(w, (rim - 0.5) * 2, np.array([25.0, 25, 30]), "eye_g")
    if p["hat"]:
        w = _Window(cv, 0, p["hairline"] - 0.18, p["face_a"] + 0.35)
        e, d = w.ellipse(0, p["hairline"] - 0.18, p["face_a"] + 0.2, 0.32)
        hat = p["hat_colour"][None, None, :] * (0.85 + 0.15 * _field(nz[5], (5, 5), size)[w.sl][..., None])
        paint(w, np.minimum(d, (p["hairline"] - 0.08 - w.y) * unit_px), hat, "hat")
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), label


def write_face(root: Path, idx: int, seed: int, size: int) -> None:
    """One face in the official layout under `root` (= .../CelebAMask-HQ)."""
    p = draw_params(seed, idx)
    img, label = render(p, size)
    if size != MASK_SIZE:
        _, label = render(p, MASK_SIZE)
    image_path(root, idx).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(image_path(root, idx), format="JPEG", quality=95)
    for code in np.unique(label):
        name = LABELS[code]
        if name == "background":
            continue
        path = mask_path(root, idx, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(((label == code) * 255).astype(np.uint8)).save(path, format="PNG")


def generate(out: str | Path, count: int, *, seed: int = 0, size: int = 512, workers: int = 1) -> Path:
    """Write `count` faces (ids 0..count-1) into `out/CelebAMask-HQ` and return that folder."""
    from facesr.data.util import ordered_map

    root = Path(out) / TOP
    (root / IMG_DIR).mkdir(parents=True, exist_ok=True)
    (root / MASK_DIR).mkdir(parents=True, exist_ok=True)
    jobs = [(root, i, seed, size) for i in range(count)]
    for _ in ordered_map(_write_job, jobs, workers, desc="synthetic faces"):
        pass
    return root


def _write_job(job: tuple) -> None:
    write_face(*job)
