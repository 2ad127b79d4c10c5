"""corruptions.py — a reference for analyze/input/corrupt.c: the common corruptions of
ImageNet-C / CIFAR-10-C written from the benchmark's published code (hendrycks/robustness,
ImageNet-C/create_c/make_imagenet_c.py and make_cifar_c.py) with numpy, scipy and PIL from
Debian (python3-numpy python3-scipy python3-pil), and the goldens the C is tested against.

Images are float arrays (C,H,W) of [0,1] pixels, C = 1 or 3; results are the 8-bit levels
np.uint8(np.clip(v, 0, 1) * 255) as (C,H,W) uint8. The randomness is an input: every draw is
a uniform number in [0,1) from `rng.uniform()`, and normals (Box-Muller), Poisson counts
(inversion) and integers are made from them exactly as the C makes them, so both consume
the same numbers. The goldens use SplitMix64 (below); routerscope itself feeds GSL's
mt19937 seeded from (seed, image, view).

    /usr/bin/python3 pytorch/corruptions.py tests/golden/corrupt   # writes the goldens
"""
import gzip
import io
import math
import os
import sys

import numpy as np
import scipy.ndimage as ndi
from PIL import Image

NAMES = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "zoom_blur", "fog",
         "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression", "speckle_noise",
         "gaussian_blur", "saturate", "motion_blur", "snow", "frost"]

# [imagenet, cifar][severity - 1], from the functions of the same name in
# make_imagenet_c.py and make_cifar_c.py.
P = {
    "gaussian_noise": ([.08, .12, .18, .26, .38], [.04, .06, .08, .09, .10]),
    "shot_noise": ([60, 25, 12, 5, 3], [500, 250, 100, 75, 50]),
    "impulse_noise": ([.03, .06, .09, .17, .27], [.01, .02, .03, .05, .07]),
    "speckle_noise": ([.15, .2, .35, .45, .6], [.06, .1, .12, .16, .2]),
    "gaussian_blur": ([1, 2, 3, 4, 6], [.4, .6, .7, .8, 1]),
    "glass_blur": ([(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],
                   [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)]),
    "defocus_blur": ([(3, .1), (4, .5), (6, .5), (8, .5), (10, .5)],
                     [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)]),
    "zoom_blur": ([(1.11, .01), (1.16, .01), (1.21, .02), (1.26, .02), (1.31, .03)],
                  [(1.06, .01), (1.11, .01), (1.16, .01), (1.21, .01), (1.26, .01)]),
    "fog": ([(1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)],
            [(.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)]),
    "contrast": ([.4, .3, .2, .1, .05], [.75, .5, .4, .3, .15]),
    "brightness": ([.1, .2, .3, .4, .5], [.05, .1, .15, .2, .3]),
    "saturate": ([(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)],
                 [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)]),
    "jpeg_compression": ([25, 18, 15, 10, 7], [80, 65, 58, 50, 40]),
    "pixelate": ([0.6, 0.5, 0.4, 0.3, 0.25], [0.95, 0.9, 0.85, 0.75, 0.65]),
    "elastic_transform": ([(244 * 2, 244 * 0.7, 244 * 0.1), (244 * 2, 244 * 0.08, 244 * 0.2),
                           (244 * 0.05, 244 * 0.01, 244 * 0.02), (244 * 0.07, 244 * 0.01, 244 * 0.02),
                           (244 * 0.12, 244 * 0.01, 244 * 0.02)],
                          [(32 * 0, 32 * 0, 32 * 0.08), (32 * 0.05, 32 * 0.2, 32 * 0.07),
                           (32 * 0.08, 32 * 0.06, 32 * 0.06), (32 * 0.1, 32 * 0.04, 32 * 0.05),
                           (32 * 0.1, 32 * 0.03, 32 * 0.03)]),
    "motion_blur": ([(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)], [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)]),
    "snow": ([(0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
              (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)],
             [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
              (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)]),
    "frost": ([(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],
              [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)]),
}
FOG_MAPSIZE = (256, 32)
FROST_DECAY = 1.3  # our frost texture (the benchmark's photographs are not here)


class SplitMix64:
    """u = (next >> 11) * 2^-53 of SplitMix64 (Steele et al.), the goldens' generator."""

    def __init__(self, seed):
        self.s = seed & 0xFFFFFFFFFFFFFFFF

    def uniform(self):
        m = 0xFFFFFFFFFFFFFFFF
        self.s = (self.s + 0x9E3779B97F4A7C15) & m
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
        z ^= z >> 31
        return (z >> 11) * (1.0 / 9007199254740992.0)


def normal(rng):
    u1, u2 = rng.uniform(), rng.uniform()
    return math.sqrt(-2 * math.log(1 - u1)) * math.cos(2 * math.pi * u2)


def poisson(rng, lam):
    u = rng.uniform()
    p = math.exp(-lam)
    F, k = p, 0
    while u > F and not (p == 0 and k > lam):
        k += 1
        p *= lam / k
        F += p
    return k


def randint(rng, lo, hi):
    v = lo + math.floor(rng.uniform() * (hi - lo))
    return v if v < hi else hi - 1


def levels(v):
    """np.uint8(np.clip(v, 0, 1) * 255)"""
    return np.uint8(np.clip(v, 0, 1) * 255)


def to_u8(x):
    """The 8-bit image PIL operations start from."""
    return np.floor(np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


# ---- pointwise ------------------------------------------------------------------------

def noise(name, x, c, rng):
    flat = x.ravel()
    out = np.empty_like(flat)
    for i, v in enumerate(flat):
        v = float(v)
        if name == "gaussian_noise":
            v = v + c * normal(rng)
        elif name == "speckle_noise":
            v = v + v * (c * normal(rng))
        elif name == "shot_noise":
            v = poisson(rng, v * c) / c
        else:  # impulse_noise: skimage's s&p, amount c, salt_vs_pepper 0.5
            flip, salt = rng.uniform(), rng.uniform()
            if flip < c:
                v = 1.0 if salt < 0.5 else 0.0
        out[i] = v
    return levels(out.reshape(x.shape))


def contrast(x, c):
    out = np.empty(x.shape, np.uint8)
    for ch in range(x.shape[0]):
        mean = np.cumsum(x[ch].ravel())[-1] / x[ch].size  # summed in raster order
        out[ch] = levels((x[ch] - mean) * c + mean)
    return out


def rgb2hsv(a):
    """skimage.color.rgb2hsv on (3,N)."""
    v = a.max(0)
    delta = v - a.min(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(delta == 0, 0.0, delta / v)
        h = np.zeros_like(v)
        idx = a[0] == v
        h[idx] = ((a[1] - a[2]) / delta)[idx]
        idx = a[1] == v
        h[idx] = (2. + (a[2] - a[0]) / delta)[idx]
        idx = a[2] == v
        h[idx] = (4. + (a[0] - a[1]) / delta)[idx]
    h = (h / 6.) % 1.
    h[delta == 0.] = 0.
    return np.stack([h, s, v])


def hsv2rgb(a):
    """skimage.color.hsv2rgb on (3,N)."""
    hi = np.floor(a[0] * 6)
    f = a[0] * 6 - hi
    p = a[2] * (1 - a[1])
    q = a[2] * (1 - f * a[1])
    t = a[2] * (1 - (1 - f) * a[1])
    v = a[2]
    hi = hi.astype(np.int64) % 6
    table = np.stack([np.stack((v, t, p)), np.stack((q, v, p)), np.stack((p, v, t)), np.stack((p, q, v)),
                      np.stack((t, p, v)), np.stack((v, p, q))])
    return np.take_along_axis(table, hi[None, None, :].repeat(3, 1), 0)[0]


def hsv_op(name, x, c):
    C, H, W = x.shape
    rgb = np.repeat(x, 3, 0) if C == 1 else x
    hsv = rgb2hsv(rgb.reshape(3, -1))
    if name == "brightness":
        hsv[2] = np.clip(hsv[2] + c, 0, 1)
    else:
        hsv[1] = np.clip(hsv[1] * c[0] + c[1], 0, 1)
    lv = levels(hsv2rgb(hsv)).astype(np.uint32)
    if C == 3:
        return lv.reshape(3, H, W).astype(np.uint8)
    luma = (lv[0] * 19595 + lv[1] * 38470 + lv[2] * 7471 + 0x8000) >> 16  # PIL's RGB -> L
    return luma.reshape(1, H, W).astype(np.uint8)


# ---- filters --------------------------------------------------------------------------

def gaussian(x, sigma, mode="nearest", truncate=4.0):
    """skimage.filters.gaussian per (H,W) plane: scipy's gaussian_filter."""
    if sigma <= 1e-15:
        return x.copy()
    return np.stack([ndi.gaussian_filter(p, sigma, mode=mode, truncate=truncate) for p in x])


def disk(radius, alias_blur):
    half = 8 if radius <= 8 else int(radius)
    L = np.arange(-half, half + 1)
    X, Y = np.meshgrid(L, L)
    k = np.array((X ** 2 + Y ** 2) <= radius ** 2, dtype=np.float64)
    k /= k.sum()
    kr = 1 if radius <= 8 else 2  # cv2.GaussianBlur ksize (3,3) or (5,5), BORDER_REFLECT_101
    g = np.exp(-np.arange(-kr, kr + 1) ** 2 / (2 * alias_blur ** 2))
    g /= g.sum()
    k = ndi.correlate1d(k, g, axis=1, mode="mirror")
    return ndi.correlate1d(k, g, axis=0, mode="mirror")


def defocus_blur(x, c):
    k = disk(*c)
    return levels(np.stack([ndi.correlate(p, k, mode="mirror") for p in x]))  # cv2.filter2D


def glass_blur(x, c, rng):
    sigma, d, iters = c[0], int(c[1]), int(c[2])
    C, H, W = x.shape
    y = np.uint8(gaussian(x, sigma) * 255)
    for _ in range(iters):
        for h in range(H - d, d, -1):
            for w in range(W - d, d, -1):
                dx, dy = randint(rng, -d, d), randint(rng, -d, d)
                hp, wp = h + dy, w + dx
                y[:, h, w], y[:, hp, wp] = y[:, hp, wp].copy(), y[:, h, w].copy()
    return levels(gaussian(y / 255., sigma))


def clipped_zoom(p, z):
    """The benchmark's clipped_zoom of one (H,W) float32 plane, per axis."""
    H, W = p.shape
    ch, cw = int(np.ceil(H / z)), int(np.ceil(W / z))
    top, left = (H - ch) // 2, (W - cw) // 2
    out = ndi.zoom(p[top:top + ch, left:left + cw], (z, z), order=1)
    tt, tl = (out.shape[0] - H) // 2, (out.shape[1] - W) // 2
    return out[tt:tt + H, tl:tl + W]


def zoom_blur(x, c):
    zs = np.arange(1, c[0], c[1])
    out = np.empty(x.shape, np.uint8)
    for ch in range(x.shape[0]):
        p = x[ch].astype(np.float32)
        acc = np.zeros_like(p)
        for z in zs:
            acc += clipped_zoom(p, z)
        out[ch] = levels((p + acc) / np.float32(len(zs) + 1))
    return out


def plasma_fractal(mapsize, wibbledecay, rng):
    m = np.empty((mapsize, mapsize), dtype=np.float64)
    m[0, 0] = 0
    step, wibble = mapsize, 100.0

    def wibbledmean(a):
        u = np.array([rng.uniform() for _ in range(a.size)]).reshape(a.shape)
        return a / 4 + wibble * (-wibble + (wibble - -wibble) * u)

    while step >= 2:
        h = step // 2
        corner = m[0:mapsize:step, 0:mapsize:step]
        sq = corner + np.roll(corner, shift=-1, axis=0)
        sq = sq + np.roll(sq, shift=-1, axis=1)
        m[h:mapsize:step, h:mapsize:step] = wibbledmean(sq)
        dr = m[h:mapsize:step, h:mapsize:step]
        ul = m[0:mapsize:step, 0:mapsize:step]
        lt = (dr + np.roll(dr, 1, axis=0)) + (ul + np.roll(ul, -1, axis=1))
        m[0:mapsize:step, h:mapsize:step] = wibbledmean(lt)
        tt = (dr + np.roll(dr, 1, axis=1)) + (ul + np.roll(ul, -1, axis=0))
        m[h:mapsize:step, 0:mapsize:step] = wibbledmean(tt)
        step //= 2
        wibble /= wibbledecay
    m -= m.min()
    return m / m.max()


def fog(x, c, cifar, rng):
    C, H, W = x.shape
    n = FOG_MAPSIZE[cifar]
    while n < H or n < W:
        n *= 2
    max_val = x.max()
    y = x + c[0] * plasma_fractal(n, c[1], rng)[:H, :W][None]
    return levels(y * max_val / (max_val + c[0]))


def warp_mirror(p, inv):
    """cv2.warpAffine (INTER_LINEAR, BORDER_REFLECT_101) with the inverse map INV, exact
    bilinear weights."""
    H, W = p.shape
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    sx = inv[0] * xx + inv[1] * yy + inv[2]
    sy = inv[3] * xx + inv[4] * yy + inv[5]
    fy, fx = np.floor(sy), np.floor(sx)
    ty, tx = sy - fy, sx - fx
    out = np.zeros((H, W))
    for dy in (0, 1):
        for dx in (0, 1):
            iy = mirror(fy.astype(np.int64) + dy, H)
            ix = mirror(fx.astype(np.int64) + dx, W)
            out += (ty if dy else 1 - ty) * (tx if dx else 1 - tx) * p[iy, ix]
    return out


def mirror(i, n):
    if n == 1:
        return np.zeros_like(i)
    period = 2 * n - 2
    m = i % period
    return np.where(m >= n, period - m, m)


def affine_inverse(p, q):
    """cv2.getAffineTransform(P -> Q), inverted as warpAffine does."""
    A = np.array([[p[i][0], p[i][1], 1.0] for i in range(3)])
    M = np.linalg.solve(A, np.array(q, dtype=np.float64)).T  # (2,3)
    Minv = np.linalg.inv(np.vstack([M, [0, 0, 1]]))
    return Minv[:2].ravel()


def elastic_transform(x, c, rng):
    alpha, sigma, jit = c
    C, H, W = x.shape
    img = x.astype(np.float32)
    cs = np.float32([H, W]) // 2
    s = min(H, W) // 3
    pts1 = np.float32([cs + s, [cs[0] + s, cs[1] - s], cs - s])
    d = np.float32([[-jit + (jit - -jit) * rng.uniform() for _ in range(2)] for _ in range(3)])
    pts2 = pts1 + d
    inv = affine_inverse(pts1.astype(np.float64), pts2.astype(np.float64))
    warped = np.stack([warp_mirror(p, inv).astype(np.float32) for p in img])

    def field():
        u = np.array([-1 + (1 - -1) * rng.uniform() for _ in range(H * W)]).reshape(H, W)
        return (gaussian(u[None], sigma, mode="reflect", truncate=3)[0] * alpha).astype(np.float32)

    dx = field()
    dy = field()
    yy, xx = np.mgrid[0:H, 0:W]
    out = np.empty(x.shape, np.uint8)
    for ch in range(C):
        v = ndi.map_coordinates(warped[ch], [(yy + dy).ravel(), (xx + dx).ravel()], order=1, mode="reflect")
        out[ch] = levels(v.reshape(H, W).astype(np.float32))
    return out


# ---- motion_blur, snow, frost -------------------------------------------------------

def motion_blur_plane(u, radius, sigma, angle):
    """ImageMagick 6's MotionBlurImage (Q16) on one 8-bit plane U (H,W), as the benchmark
    calls it through Wand: 2 ceil(radius) + 1 taps, tap i weighted exp(-i^2 / 2 sigma^2)
    (normalised) at (x + ceil(i cos a - 1/2), y + ceil(i sin a - 1/2)), edge pixels off the
    image; the sum in 16-bit quantum units rounded, then scaled to 8 bits as its PNG writer."""
    H, W = u.shape
    n = int(2 * math.ceil(radius) + 1)
    a = angle * math.pi / 180
    px, py = n * math.sin(a), n * math.cos(a)
    length = math.hypot(px, py)
    k = [math.exp(-(float(i) * i) / (2.0 * sigma * sigma)) / (math.sqrt(2 * math.pi) * sigma) for i in range(n)]
    norm = 0.0
    for v in k:
        norm += v
    k = [v / norm for v in k]
    yy, xx = np.mgrid[0:H, 0:W]
    acc = np.zeros((H, W))
    for i in range(n):
        ox, oy = math.ceil(i * py / length - 0.5), math.ceil(i * px / length - 0.5)
        acc += k[i] * (u[np.clip(yy + oy, 0, H - 1), np.clip(xx + ox, 0, W - 1)] * 257.0)
    q = np.where(acc <= 0, 0, np.where(acc >= 65535, 65535, np.floor(acc + 0.5))).astype(np.int64)
    return (((q + 128) - ((q + 128) >> 8)) >> 8).astype(np.uint8)


def motion_blur(x, c, rng):
    angle = -45 + (45 - -45) * rng.uniform()
    u = to_u8(x)
    return np.stack([motion_blur_plane(p, c[0], c[1], angle) for p in u])


def snow(x, c, rng):
    C, H, W = x.shape
    s = np.array([c[0] + c[1] * normal(rng) for _ in range(H * W)]).reshape(H, W)
    s = clipped_zoom(s, c[2])
    s[s < c[3]] = 0
    u = (np.clip(s, 0, 1) * 255).astype(np.uint8)
    layer = motion_blur_plane(u, c[4], c[5], -135 + (-45 - -135) * rng.uniform()) / 255.
    rgb = x.astype(np.float32)
    if C == 1:
        rgb = np.repeat(rgb, 3, 0)
    grey = rgb[0] * np.float32(0.299) + rgb[1] * np.float32(0.587) + rgb[2] * np.float32(0.114)
    lift = grey * np.float32(1.5) + np.float32(0.5)
    v = np.float32(c[6]) * rgb[:C] + np.float32(1 - c[6]) * np.maximum(rgb[:C], lift[None])
    return levels(v + layer[None] + np.rot90(layer, k=2)[None])


def frost_texture(H, W, rng):
    """Our substitute for the benchmark's frost photographs: a plasma map m folded into ridges
    r = 1 - |2m - 1|, squared, in 8 bits: floor(r^2 * 255)."""
    n = 32
    while n < H or n < W:
        n *= 2
    m = plasma_fractal(n, FROST_DECAY, rng)[:H, :W]
    return ((1 - np.abs(2 * m - 1)) ** 2 * 255).astype(np.uint8)


def frost(x, c, rng):
    f = frost_texture(x.shape[1], x.shape[2], rng).astype(np.float64)
    return np.uint8(np.clip(c[0] * to_u8(x).astype(np.float64) + c[1] * f[None], 0, 255))


# ---- PIL ------------------------------------------------------------------------------

def pil_image(x):
    u = to_u8(x)
    return Image.fromarray(u[0], "L") if x.shape[0] == 1 else Image.fromarray(u.transpose(1, 2, 0), "RGB")


def from_pil(im, C):
    a = np.asarray(im)
    return a[None] if C == 1 else a.transpose(2, 0, 1).copy()


def pixelate(x, c):
    C, H, W = x.shape
    im = pil_image(x).resize((int(W * c), int(H * c)), Image.BOX).resize((W, H), Image.BOX)
    return from_pil(im, C)


def jpeg_compression(x, q):
    buf = io.BytesIO()
    pil_image(x).save(buf, "JPEG", quality=q)
    return from_pil(Image.open(buf), x.shape[0])


# ---- dispatch -------------------------------------------------------------------------

def corrupt(name, severity, x, cifar, rng):
    """The 8-bit levels (C,H,W) of X (C,H,W) float [0,1] under NAME at SEVERITY."""
    c = P[name][cifar][severity - 1]
    x = np.asarray(x, dtype=np.float64)
    if name in ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"):
        return noise(name, x, c, rng)
    if name == "contrast":
        return contrast(x, c)
    if name in ("brightness", "saturate"):
        return hsv_op(name, x, c)
    if name == "gaussian_blur":
        return levels(gaussian(x, c))
    if name == "defocus_blur":
        return defocus_blur(x, c)
    if name == "glass_blur":
        return glass_blur(x, c, rng)
    if name == "zoom_blur":
        return zoom_blur(x, c)
    if name == "fog":
        return fog(x, c, cifar, rng)
    if name == "elastic_transform":
        return elastic_transform(x, c, rng)
    if name == "pixelate":
        return pixelate(x, c)
    if name == "motion_blur":
        return motion_blur(x, c, rng)
    if name == "snow":
        return snow(x, c, rng)
    if name == "frost":
        return frost(x, c, rng)
    return jpeg_compression(x, c)


# ---- goldens --------------------------------------------------------------------------

def test_image(C, H, W, k):
    """A smooth pattern with edges, as 8-bit levels / 255 in float32 (what a source gives)."""
    yy, xx = np.mgrid[0:H, 0:W]
    planes = []
    for ch in range(C):
        v = 0.5 + 0.35 * np.sin((xx * (1 + ch) + 2 * yy) * 0.3 / (1 + k)) * np.cos(yy * 0.21 + ch + k)
        v = np.where((xx // 7 + yy // 5 + k) % 3 == 0, v * 0.4, v)
        planes.append(np.floor(np.clip(v, 0, 1) * 255 + 0.5) / 255)
    return np.array(planes, dtype=np.float32)


# (channels, height, width, set) of the golden images: cifar at 28 (grey, as the bundled
# models), 32 (colour) and 24 x 40 (colour: a non-square image), imagenet at 64 (colour) and
# 96 (grey).
CASES = [(1, 28, 28, 1), (3, 32, 32, 1), (3, 64, 64, 0), (1, 96, 96, 0), (3, 24, 40, 1)]


def write_goldens(outdir):
    os.makedirs(outdir, exist_ok=True)
    index, blob = [], bytearray()
    for k, (C, H, W, cifar) in enumerate(CASES):
        img = test_image(C, H, W, k)
        in_off = len(blob)
        blob += (np.floor(img.astype(np.float64) * 255 + 0.5)).astype(np.uint8).tobytes()
        for name in NAMES:
            for sev in range(1, 6):
                seed = (k * 1000 + NAMES.index(name) * 10 + sev) * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF
                out = corrupt(name, sev, img, cifar, SplitMix64(seed))
                index.append(f"{name} {sev} {'cifar' if cifar else 'imagenet'} {C} {H} {W} {seed:016x} {in_off} "
                             f"{len(blob)}")
                blob += out.astype(np.uint8).tobytes()
    with open(os.path.join(outdir, "corrupt.txt"), "w") as f:
        f.write("# name severity set C H W seed(hex, SplitMix64) input_offset output_offset in corrupt.bin.gz\n")
        f.write("\n".join(index) + "\n")
    with gzip.GzipFile(os.path.join(outdir, "corrupt.bin.gz"), "wb", mtime=0) as f:
        f.write(bytes(blob))


if __name__ == "__main__":
    write_goldens(sys.argv[1] if len(sys.argv) > 1 else "tests/golden/corrupt")
