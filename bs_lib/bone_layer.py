r"""The bone layer: what a suppression removes, and how to keep it from touching anything else.

Every method of the course maps a radiograph :math:`x` to a soft-tissue estimate
:math:`\hat s`. Their difference

.. math:: \hat b = x - \hat s

is the **bone layer** the method removes. "Do no harm outside bone" is a
statement about :math:`\hat b`: wherever there is no bone, :math:`\hat b` should
be zero, so the output *is* the input there — every vessel, nodule edge and
grain of noise of the radiograph kept. Five rules follow from the physics of a
bone-bright radiograph.

Transfer the bone layer, not the soft tissue
    Networks work at a small working size (128² to 1024²), and a user's
    radiograph is larger. Upsampling :math:`\hat s` to the input's size blurs
    the *whole* image: every detail finer than the working size is lost, bone
    or not. Upsampling :math:`\hat b` and subtracting it from the full-size
    radiograph,

    .. math:: \hat s_{\text{full}} = x_{\text{full}} - \mathrm{up}(x_{\text{small}} - \hat s_{\text{small}}),

    removes the same bone and keeps all finer detail (:func:`transfer`). Ribs
    and clavicles are centimetres wide, so the bone layer loses little by
    being estimated at a small size; the lungs' fine structure loses
    everything. ``python -m bs_lib sample`` does this, with the rule below.
Bone only adds attenuation
    In a bone-bright image, bone makes pixels brighter, never darker:
    :math:`b \ge 0`. A negative :math:`\hat b` adds structure that is not
    bone (:func:`nonnegative`). The rule is exact on the phantom; on real
    dual-energy pairs the soft-tissue image is brighter than its radiograph in
    0.5–12.5 % of pixels by more than 0.02 (a global offset between the two
    exposures), so there it costs a little.
Bone is smooth at the finest scale
    Rib and clavicle edges span several pixels; single-pixel structure is
    noise, vessels and texture. Smoothing :math:`\hat b` with a small Gaussian
    (:func:`smooth`) lets the radiograph's finest detail pass through
    untouched, at the price of slightly softer bone edges.
Bone has no structure coarser than the rib pattern
    Ribs repeat every 2–3 cm; what brightens a radiograph over ten
    centimetres — the mediastinum, the abdomen, a thicker patient — is soft
    tissue. On the phantom, bright *is* bone ("bright is bone" +0.041 in
    ``benchmarks/results/realism_256.md``, −0.006 on the real pairs), and a
    model trained there learns the shortcut: on a real chest its bone layer
    takes in the body's large-scale brightness, and the error it adds at
    those scales can outweigh what it removes at rib scale. Subtracting the
    layer's Gaussian blur at half the rib spacing (:func:`highpass`,
    σ = 1/32 of the width) keeps the rib pattern and drops the body; the
    layer's mean stays, so a global grey-level correction survives. The rule
    also drops the true bone's own coarse part (spine, scapulae, the rib
    cage's envelope): applied to the *true* bone layer at 256², it keeps a
    symmetric BSR of 0.81 on the phantom and 0.89 on the real pairs.
Remove no more bone than the image shows
    A network trained on one scanner's bone contrast removes that much bone
    from every radiograph, also from one whose ribs are fainter (another
    energy pair, another grey-level processing); what it takes away beyond
    the bone that is there is harm. The radiograph itself says how much of the
    layer it contains: the least-squares gain of :math:`\hat b` in :math:`x`,
    both at rib scale and finer,

    .. math:: g = \frac{\langle x - G_\sigma * x,\ \hat b - G_\sigma * \hat b \rangle}
                       {\lVert \hat b - G_\sigma * \hat b \rVert^2},

    is the amount of the predicted rib pattern the image holds (:func:`gain`
    scales the layer by :math:`g` clipped to [0, 1], one gain per image). It
    can only *lower* a removal, and it knows nothing of shape: structure that
    is not bone but is in the image (a vessel, a heart border) holds its gain
    at 1. Soft tissue that happens to line up with the layer biases
    :math:`g` upwards, towards removing as much as the network asked: on the
    real development pairs about half of a phantom-trained network's layer
    does, so the rule leaves most of them whole even where the image shows
    0.4 of the bone (``benchmarks/results/bone_layer_gain_256.md``), and
    ``sample`` does not apply it unless asked.

One more step is statistics, not physics:

Several models agree on the bone, not on their mistakes
    Networks trained on the phantom with other seeds, or of other
    architectures, remove much the same ribs from a real chest, and each adds
    structure of its own beside them. The mean of their layers
    (:func:`average`; ``sample --ensemble``) keeps what they share and shrinks
    what each adds alone, as averaging shrinks independent noise. On the
    real development pairs with their bone weakened to ×0.4, the ten
    families' phantom-trained models lower the symmetric BSR by 11.0 points
    one at a time and raise it by 7.7 averaged (three seeds at 256²); a single
    layer merely scaled down as much still lowers it by 1.2
    (``benchmarks/results/ensemble_256.md``). It costs one run per member.

How much each rule buys is measured on the real development pairs by
``benchmarks/do_no_harm.py`` (``benchmarks/results/do_no_harm_{128,256}.md``), with
:func:`bs_lib.metrics.fine_detail_error` as the measure of harm.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

from bs_lib import io

RULES = ("highpass", "nonnegative", "gain", "smooth")

#: The ``highpass`` rule's Gaussian, as a fraction of the image width: half the phantom's rib spacing
#: (2.3–2.7 cm of its 43 cm field, 1/19 to 1/16 of the width), so the rib pattern itself passes (99 %).
HIGHPASS_WIDTH_FRACTION = 1 / 32


def bone_layer(radiograph: np.ndarray, soft: np.ndarray) -> np.ndarray:
    """What a suppression removed: :math:`\\hat b = x - \\hat s` (same shape as its inputs)."""
    return np.asarray(radiograph, dtype=np.float32) - np.asarray(soft, dtype=np.float32)


def nonnegative(bone: np.ndarray) -> np.ndarray:
    """Bone only brightens a bone-bright radiograph: negative values of the layer are set to 0."""
    return np.maximum(bone, 0)


def highpass(bone: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """The layer less its structure coarser than the ribs: minus its Gaussian blur of ``sigma`` pixels, plus its mean.

    ``sigma`` defaults to :data:`HIGHPASS_WIDTH_FRACTION` of the image width. The
    mean is kept, so a global grey-level correction the model makes survives.
    """
    bone = np.asarray(bone, dtype=np.float32)
    sigma = bone.shape[-1] * HIGHPASS_WIDTH_FRACTION if sigma is None else sigma
    if sigma <= 0:
        raise ValueError(f"the highpass rule needs a Gaussian sigma above 0 pixels, got {sigma}.")
    return bone - _blur(bone, sigma) + bone.mean(axis=(-2, -1), keepdims=True)


def measured_gain(bone: np.ndarray, radiograph: np.ndarray, sigma: float | None = None,
                  clip: bool = True) -> np.ndarray:
    """How much of the layer the radiograph shows: its least-squares gain there, one per image (``clip``: to [0, 1]).

    Both are compared at rib scale and finer (each less its Gaussian blur of
    ``sigma`` pixels, default :data:`HIGHPASS_WIDTH_FRACTION` of the width):
    :math:`g = \\langle x', \\hat b' \\rangle / \\langle \\hat b', \\hat b' \\rangle`.
    The shape is ``bone``'s with the last two axes of size 1.
    """
    bone = np.asarray(bone, dtype=np.float32)
    radiograph = np.asarray(radiograph, dtype=np.float32)
    if radiograph.shape != bone.shape:
        raise ValueError(f"the gain rule compares a bone layer {bone.shape} with the radiograph it came from "
                         f"{radiograph.shape}: they must have the same shape.")
    sigma = bone.shape[-1] * HIGHPASS_WIDTH_FRACTION if sigma is None else sigma
    layer, image = bone - _blur(bone, sigma), radiograph - _blur(radiograph, sigma)
    power = np.sum(layer * layer, axis=(-2, -1), keepdims=True)
    measured = np.sum(image * layer, axis=(-2, -1), keepdims=True) / np.maximum(power, 1e-12)
    return np.clip(measured, 0, 1) if clip else measured


def gain(bone: np.ndarray, radiograph: np.ndarray) -> np.ndarray:
    """The layer scaled by :func:`measured_gain`: no more bone removed than the radiograph shows."""
    return np.asarray(bone, dtype=np.float32) * measured_gain(bone, radiograph)


def smooth(bone: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """The layer blurred by a Gaussian of ``sigma`` pixels (last two axes): the finest detail stays in the image."""
    return bone if sigma <= 0 else _blur(np.asarray(bone, dtype=np.float32), sigma)


def _blur(bone: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of ``sigma`` pixels over the last two axes (borders reflected)."""
    return gaussian_filter(bone, (0,) * (bone.ndim - 2) + (sigma, sigma), mode="reflect")


def check_rules(rules: Iterable[str]) -> tuple[str, ...]:
    """The rules as a tuple; an unknown one is a :class:`ValueError` that lists :data:`RULES`."""
    rules = tuple(rules)
    unknown = [rule for rule in rules if rule not in RULES]
    if unknown:
        raise ValueError(f"unknown bone-layer rule(s) {unknown}: choose from {', '.join(RULES)}.")
    return rules


def restrict(bone: np.ndarray, rules: Iterable[str] = (), sigma: float = 1.0,
             radiograph: np.ndarray | None = None) -> np.ndarray:
    """Apply the chosen ``rules`` (from :data:`RULES`, in that order) to a bone layer.

    ``gain`` needs the ``radiograph`` the layer was taken from.
    """
    rules = check_rules(rules)
    if "highpass" in rules:
        bone = highpass(bone)
    if "nonnegative" in rules:
        bone = nonnegative(bone)
    if "gain" in rules:
        if radiograph is None:
            raise ValueError("the gain rule scales the bone layer to the radiograph it came from: pass radiograph=.")
        bone = gain(bone, radiograph)
    if "smooth" in rules:
        bone = smooth(bone, sigma)
    return bone


def full_size_layer(radiograph: np.ndarray, radiograph_small: np.ndarray, soft_small: np.ndarray,
                    rules: Iterable[str] = (), sigma: float = 1.0) -> np.ndarray:
    """The bone layer a suppression at a smaller size removed, after ``rules``, upsampled to ``radiograph``'s size.

    All images are ``(1, H, W)``; ``radiograph_small`` is what the model saw and
    ``soft_small`` what it returned. ``rules`` (see :func:`restrict`) act on the
    layer at the working size.
    """
    if np.shape(radiograph_small) != np.shape(soft_small):
        raise ValueError(f"the working-size radiograph {np.shape(radiograph_small)} and soft-tissue estimate "
                         f"{np.shape(soft_small)} differ in shape: pass the image the model saw and its output.")
    bone = restrict(bone_layer(radiograph_small, soft_small), rules, sigma, radiograph_small)
    return io.resize(bone, tuple(np.shape(radiograph)[-2:]), clip=False)


def subtract(radiograph: np.ndarray, bone: np.ndarray) -> np.ndarray:
    """The soft-tissue estimate: the radiograph less a (full-size) bone layer, clipped to [0, 1]."""
    return np.clip(np.asarray(radiograph, dtype=np.float32) - bone, 0, 1)


def transfer(radiograph: np.ndarray, radiograph_small: np.ndarray, soft_small: np.ndarray,
             rules: Iterable[str] = (), sigma: float = 1.0) -> np.ndarray:
    """Full-size soft tissue from a suppression done at a smaller size: ``radiograph`` minus the upsampled bone layer.

    All images are ``(1, H, W)`` in [0, 1] (:func:`full_size_layer`, then :func:`subtract`).
    """
    return subtract(radiograph, full_size_layer(radiograph, radiograph_small, soft_small, rules, sigma))


def average(layers: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of several models' bone layers of one radiograph (each after its rules): an ensemble's layer."""
    if len(layers) == 0:
        raise ValueError("an ensemble needs at least one bone layer to average.")
    shapes = sorted({np.shape(layer) for layer in layers})
    if len(shapes) > 1:
        raise ValueError(f"the bone layers to average differ in shape {shapes}: bring each to the radiograph's "
                         "size first (full_size_layer).")
    return np.mean(np.stack([np.asarray(layer, dtype=np.float32) for layer in layers]), axis=0)
