"""Drawing a face: anti-aliased shapes on a 64 x 64 canvas, in the order that decides what
covers what (background, shoulders, hair behind, face, features, hair in front, what is worn)."""

from __future__ import annotations

import numpy as np

from cfbench.tasks.worlds.face_people import GREY, HAIR, PALE, SIZE, Identity, seeded_rng


def _soft(d: np.ndarray, width: float = 0.6) -> np.ndarray:
    """Coverage of a shape from its signed distance (negative inside): anti-aliased edges."""
    return np.clip(0.5 - d / width, 0.0, 1.0)


def _ellipse(u, v, cu, cv, au, av):
    """Approximate signed distance (pixels) to an ellipse."""
    q = np.sqrt(((u - cu) / au) ** 2 + ((v - cv) / av) ** 2)
    return (q - 1.0) * min(au, av)


def _segment(u, v, a, b, radius):
    """Signed distance to a thick segment from a to b."""
    pu, pv = u - a[0], v - a[1]
    du, dv = b[0] - a[0], b[1] - a[1]
    t = np.clip((pu * du + pv * dv) / (du * du + dv * dv + 1e-9), 0, 1)
    return np.hypot(pu - t * du, pv - t * dv) - radius


def _arc(u, v, cu, cv, half_width, bend, radius):
    """A parabola v = cv - bend * (1 - ((u - cu) / half_width)^2) over |u - cu| <= half_width, as a
    thick curve (bend > 0 curves the middle up: a smile's corners are higher than its middle, so a
    smile uses bend < 0)."""
    x = np.clip((u - cu) / half_width, -1, 1)
    curve = cv - bend * (1 - x**2)
    inside = np.abs(u - cu) <= half_width
    d = np.abs(v - curve) - radius
    return np.where(inside, d, np.hypot(np.abs(u - cu) - half_width, v - curve) + 0.0 - radius)


class _Canvas:
    def __init__(self, img: np.ndarray):
        self.img = img
        self.layers: dict[str, np.ndarray] = {}

    def paint(self, coverage: np.ndarray, colour, name: str | None = None) -> None:
        c = coverage[..., None]
        self.img = self.img * (1 - c) + np.asarray(colour, np.float64) * c
        if name is not None:
            self.layers[name] = np.maximum(self.layers.get(name, 0), coverage)


def render_face(
    person: Identity, attributes: dict[str, int], seed: int, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """(image H x W x 3, object coverage H x W) of ``person`` with ``attributes`` in the scene of
    (seed, index): pose, lighting and background come from the scene, not from the attributes,
    so flipping one attribute changes only what that attribute draws."""
    r = seeded_rng(seed, index, 3)
    at = attributes
    # scene: pose, light, background, clothes
    theta, scale = r.uniform(-0.12, 0.12), r.uniform(0.93, 1.07)
    cx, cy = SIZE / 2 + r.uniform(-2.5, 2.5), SIZE / 2 + 1.5 + r.uniform(-2.0, 2.0)
    light = r.uniform(-0.12, 0.12, 2)
    top, bottom = r.uniform(0.15, 0.9, 3), r.uniform(0.15, 0.9, 3)
    clothes = r.uniform(0.1, 0.9, 3)
    hat_colour = r.uniform(0.05, 0.8, 3)
    frame_colour = r.choice([(0.08, 0.08, 0.08), (0.45, 0.3, 0.15), (0.6, 0.6, 0.65)])
    stubble = r.random((SIZE, SIZE)) < 0.55
    noise = r.normal(0, 0.012, (SIZE, SIZE, 3))
    wrinkle_jitter = r.uniform(-0.4, 0.4, 6)

    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) + 0.5
    dx, dy = (xx - cx) / scale, (yy - cy) / scale
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)

    grad = np.linspace(0, 1, SIZE)[:, None, None]
    canvas = _Canvas(top * (1 - grad) + bottom * grad + np.zeros((SIZE, SIZE, 3)))
    p = person
    fw, fh = p.face_w, p.face_h
    hair = (
        np.array(GREY)
        if at["Gray_Hair"]
        else np.array(HAIR["blond"])
        if at["Blond_Hair"]
        else np.array(p.hair)
    )
    if not at["Young"] and not at["Gray_Hair"]:
        hair = 0.6 * hair + 0.4 * GREY  # age salts the hair
    skin = PALE if at["Pale_Skin"] else np.array(p.skin)
    neck = skin * 0.9
    if not at["Young"]:
        skin = skin * np.array([0.95, 0.92, 0.9]) + 0.02

    # shoulders and neck (not the object)
    canvas.paint(_soft(_ellipse(u, v, 0, fh + 15, fw * 2.2, 10)), clothes)
    canvas.paint(_soft(np.maximum(np.abs(u) - fw * 0.45, -(v - fh * 0.5))) * (v < fh + 8), neck)
    # long hair behind the face
    if p.hair_style == 2:
        canvas.paint(_soft(_ellipse(u, v, 0, 3, fw * 1.35, fh * 1.25)), hair, "object")
    # ears and earrings (painted under the face and hair, the earrings are hidden in about half
    # the renders: components/research/face_attribute_visibility.py; drawing them on top changes
    # every render with earrings, so the face assets would have to be rebuilt with it)
    for side in (-1, 1):
        canvas.paint(_soft(_ellipse(u, v, side * fw * 0.98, 0.5, 2.2, 3.6)), skin * 0.95, "object")
        if at["Wearing_Earrings"]:
            canvas.paint(
                _soft(_ellipse(u, v, side * fw * 1.0, 4.6, 1.0, 1.0)), (0.95, 0.85, 0.3), "object"
            )
    # the face: an ellipse whose lower half widens with the jaw
    jaw = np.where(v > 0, p.jaw, 1.0)
    face = _soft(_ellipse(u / jaw, v, 0, 0, fw, fh))
    shade = 1 + light[0] * u / fw + light[1] * v / fh
    canvas.paint(face, skin[None, None, :] * shade[..., None], "object")
    # beard and mustache (hair colour over the lower face)
    beard_colour = 0.7 * hair + 0.3 * np.array([0.1, 0.08, 0.06])
    if not at["No_Beard"]:
        region = (
            face * _soft(fh * 0.3 - v) * _soft(-_ellipse(u, v, 0, fh * 0.6, p.mouth_w + 1.4, 2.8))
        )
        canvas.paint(region * np.where(stubble, 0.9, 0.55), beard_colour)
    if at["Mustache"]:
        canvas.paint(_soft(_arc(u, v, 0, fh * 0.47, p.mouth_w * 0.95, 0.6, 1.1)), beard_colour)
    # wrinkles of age: forehead lines and crow's feet
    if not at["Young"]:
        line = skin * 0.72
        for k, y0 in enumerate((-fh * 0.62, -fh * 0.52, -fh * 0.42)):
            canvas.paint(0.8 * _soft(_arc(u, v, wrinkle_jitter[k], y0, fw * 0.45, 0.6, 0.35)), line)
        for side in (-1, 1):
            for k, dv in enumerate((-1.0, 0.3, 1.6)):
                a = (side * (p.eye_dx + p.eye_size + 1.2), p.eye_y + dv * 0.8)
                b = (
                    side * (p.eye_dx + p.eye_size + 3.6),
                    p.eye_y + dv * 1.6 + wrinkle_jitter[3 + k] * 0.5,
                )
                canvas.paint(0.8 * _soft(_segment(u, v, a, b, 0.32)), line)
        for side in (-1, 1):  # nasolabial folds
            canvas.paint(
                0.7
                * _soft(
                    _segment(
                        u,
                        v,
                        (side * (p.nose_w + 1.0), p.nose_len * 0.9 - 1),
                        (side * (p.mouth_w + 1.0), fh * 0.55),
                        0.35,
                    )
                ),
                line,
            )
    # eyes, irises, eyebrows
    for side in (-1, 1):
        ex = side * p.eye_dx
        canvas.paint(
            _soft(_ellipse(u, v, ex, p.eye_y, p.eye_size * 1.35, p.eye_size * 0.75)),
            (0.96, 0.96, 0.94),
        )
        canvas.paint(_soft(_ellipse(u, v, ex, p.eye_y, p.eye_size * 0.6, p.eye_size * 0.6)), p.iris)
        canvas.paint(_soft(_ellipse(u, v, ex, p.eye_y, 0.45, 0.45)), (0.03, 0.03, 0.03))
        by = p.eye_y - 3.2
        a, b = (
            (ex - side * 2.6, by + p.brow_tilt * 2),
            (ex + side * 2.8, by - p.brow_tilt * 2 - 0.3),
        )
        canvas.paint(
            _soft(_segment(u, v, a, b, 0.45 * p.brow_thick)),
            0.75 * hair + 0.25 * np.array(p.hair) * 0.5,
        )
    # nose
    canvas.paint(
        0.8 * _soft(_segment(u, v, (0.5, p.eye_y + 1.5), (p.nose_w * 0.5, p.nose_len), 0.4)),
        skin * 0.75,
    )
    canvas.paint(0.6 * _soft(_ellipse(u, v, 0, p.nose_len + 0.5, p.nose_w, 0.8)), skin * 0.7)
    # mouth: neutral (flat, a little down), smile (corners up, wider, cheek folds), open (a dark
    # gap, with teeth when smiling); lips red with lipstick
    my = fh * 0.58
    lips = (
        np.array((0.72, 0.12, 0.18))
        if at["Wearing_Lipstick"]
        else skin * np.array([0.82, 0.6, 0.6])
    )
    half = p.mouth_w * (1.25 if at["Smiling"] else 1.0)
    bend = -1.9 if at["Smiling"] else 0.35
    if at["Mouth_Slightly_Open"]:
        gap = _soft(
            np.maximum(
                _arc(
                    u, v, 0, my + 0.2, half * 0.9, bend * 0.8, 1.1 + (0.5 if at["Smiling"] else 0)
                ),
                np.abs(u) - half * 0.92,
            )
        )
        canvas.paint(gap, (0.18, 0.05, 0.06))
        if at["Smiling"]:
            canvas.paint(
                gap * _soft(v - (my + 0.2 + bend * 0.8 * (1 - (u / half) ** 2) * -1) + 0.1),
                (0.93, 0.92, 0.88),
            )
        canvas.paint(_soft(_arc(u, v, 0, my - 1.0, half, bend, 0.55)), lips)
        canvas.paint(_soft(_arc(u, v, 0, my + 1.6, half * 0.9, bend * 0.7, 0.6)), lips)
    else:
        canvas.paint(_soft(_arc(u, v, 0, my, half, bend, 0.8)), lips)
    if at["Smiling"]:
        for side in (-1, 1):
            canvas.paint(
                0.75 * _soft(_arc(u, v, side * (half + 1.6), my - 0.6, 1.3, -0.8, 0.35)),
                skin * 0.72,
            )
            canvas.paint(
                0.35 * _soft(_ellipse(u, v, side * (half + 1.5), my - 3.2, 2.6, 1.6)),
                skin * np.array([1.02, 0.86, 0.84]),
            )
    # hair on top, bangs, glasses, hat
    scalp = _ellipse(u, v, 0, -fh * 0.25, fw * 1.08, fh * 0.95)
    hairline = {0: -fh * 0.55, 1: -fh * 0.5, 2: -fh * 0.5, 3: -fh * 0.52}[p.hair_style]
    top_hair = _soft(np.maximum(scalp, v - hairline))
    if p.hair_style == 3:
        top_hair = np.maximum(top_hair, _soft(np.maximum(scalp, v - hairline - 3 - 0.35 * u)))
    if p.hair_style in (1, 2):  # hair down the sides
        sides = _soft(
            np.maximum(
                _ellipse(u, v, 0, -1, fw * 1.18, fh * (1.05 if p.hair_style == 2 else 0.8)),
                -(np.abs(u) - fw * 0.82),
            )
        )
        top_hair = np.maximum(top_hair, sides)
    canvas.paint(top_hair, hair, "object")
    if at["Bangs"]:
        bangs = _soft(
            np.maximum(_ellipse(u, v, 0, -fh * 0.45, fw * 0.95, fh * 0.45), v - (p.eye_y - 4.2))
        )
        canvas.paint(bangs, hair * 0.95, "object")
    if at["Eyeglasses"]:
        for side in (-1, 1):
            ring = (
                np.abs(_ellipse(u, v, side * p.eye_dx, p.eye_y, p.eye_size * 1.9, p.eye_size * 1.5))
                - 0.45
            )
            canvas.paint(_soft(ring), frame_colour, "object")
            canvas.paint(
                _soft(
                    _segment(
                        u,
                        v,
                        (side * (p.eye_dx + p.eye_size * 1.9), p.eye_y),
                        (side * fw * 0.98, p.eye_y - 0.5),
                        0.4,
                    )
                ),
                frame_colour,
                "object",
            )
        canvas.paint(
            _soft(
                _segment(
                    u,
                    v,
                    (-p.eye_dx + p.eye_size * 1.9, p.eye_y),
                    (p.eye_dx - p.eye_size * 1.9, p.eye_y),
                    0.4,
                )
            ),
            frame_colour,
            "object",
        )
    if at["Wearing_Hat"]:
        crown = _soft(
            np.maximum(_ellipse(u, v, 0, -fh * 0.75, fw * 1.05, fh * 0.6), v - (-fh * 0.55))
        )
        brim = _soft(_ellipse(u, v, 0, -fh * 0.55, fw * 1.45, 1.6))
        canvas.paint(np.maximum(crown, brim), hat_colour, "object")
    img = np.clip(canvas.img + noise, 0, 1).astype(np.float32)
    return img, canvas.layers.get("object", np.zeros((SIZE, SIZE)))
