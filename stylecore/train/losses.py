"""Training losses, as the papers and the authors' code define them, on the one encoder.

Every function returns the *unweighted* terms in a dict; the trainer weights them with
:data:`DEFAULT_WEIGHTS` (or the run's overrides) and adds them up. Sources:

* AdaIN: Huang & Belongie 2017, eq. 11-13 (and naoto0804/pytorch-AdaIN).
* SANet: Park & Lee, CVPR 2019, eq. 6-8: content = MSE of mean-variance-normalised features at
  relu4_1 and relu5_1, style = mean/std MSE at relu1_1..relu5_1, identity losses on
  ``decode(transform(c, c))`` and ``decode(transform(s, s))``; weights 1, 3, 50, 1.
* RAST: Ma et al. (WACV 2023; TOMM 2023 "RAST: Restorable Arbitrary Style Transfer"), following the
  authors' code (YingnanMa/RAST-2.0, ``SANet/SANet-replaced/net.py`` and ``train.py``): two
  stylization paths, each restored by re-stylizing, give the multi-restoration loss (content- and
  style-transitive terms plus the cross-path restoration terms), the style-difference loss is the
  reciprocal of the style distance to the image whose style must go, plus the SANet identity losses
  and an LSGAN term with two multi-scale PatchGAN discriminators. Weights 2, 2, 2, 1, 1, 50, 1, 5.

``scale_features`` (a training setting; default on for SANet/RAST, off for AdaIN) divides each layer's
features by its mean activation before the losses compare them (:mod:`stylecore.train.scales`): the
papers' weights were set on ``vgg_normalised``, whose activations are ~1, while ``vgg16-hed``'s are
6-18x larger, which would multiply the feature terms by up to ~280 against the pixel and normalised
terms. The networks always see raw features.

``grid`` (every method; weight 0 by default, so the papers' objectives are unchanged) is this
project's addition: the energy of the pattern the output repeats every 2, 4 and 8 px, the periods of
the decoder's upsampling cells (:func:`stylecore.metrics.periodic_tile`). A penalty on the spectrum
at the frequencies where upsampling leaves its artefacts, in the spirit of Durall et al., "Watch your
up-convolution" (CVPR 2020), who add a spectral term to stop generators' grid artefacts. Enabling it
makes ``stylecore.metrics.grid_amplitude`` a trained-for quantity: judge such weights by eye and by
the ``checkerboard`` ratio too.

``peaks`` (every method; weight 0 by default) penalises a texture the decoder draws whatever the
style: narrow spectral peaks of the output that neither input has (:func:`peaks_loss`), such as a 3 px
horizontal/vertical hatch, which ``grid`` does not see because it is not aligned with the upsampling
cells. It can remove such a hatch at the cost of fine texture (f_s rises).

``style_layers`` (every method; all 1 by default, as the papers) weighs the layers of the ``style``
term. With ``scale_features`` the shallow layers count ~250x less than on raw features, while f_s
(:mod:`stylecore.metrics`) sums raw-feature distances and is mostly relu1_1/relu2_1: a decoder that
loses fine texture barely pays for it in training, but its f_s rises.

``gan`` for SANet (weight 0 by default, as the paper) takes RAST's adversarial term: a multi-scale
PatchGAN trained to tell the style images from the outputs, and the generator's LSGAN loss against it.
It matches the style's shallow-layer texture without a regular hatch.

``palette`` (every method; weight 0 by default) is another addition: the mean/std MSE of the output's
RGB channels against the style image's, in grey levels, which is AdaIN's style loss applied to the
pixels. The papers' style losses reach the palette only through relu1_1, which ``scale_features``
weighs down ~280x against the raw features.

The evaluation metrics (f_s, f_c) are a different thing and live in :mod:`stylecore.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from stylecore.metrics import GRID_PERIODS, periodic_tile, spectral_peaks
from stylecore.nets.decoder import decode, skip_layers
from stylecore.nets.discriminator import MultiScalePatchGAN
from stylecore.nets.encoder import STYLE_LAYERS, VGGEncoder
from stylecore.ops import adain, gram, mean_std, mean_variance_norm
from stylecore.train.scales import scaled

ADAIN_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
STRUCTURE_LAYERS = ("relu2_1", "relu3_1")
RECON_PIXEL_WEIGHT = 10.0  # the reconstruction term's pixel MSE against its four feature layers
SANET_CONTENT_LAYERS = ("relu4_1", "relu5_1")

Feats = Mapping[str, torch.Tensor]

# Loss weights by method: the papers' / authors' defaults. The keys are the terms each method's loss
# function returns that enter the objective (the trainer's config can override every one).
DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    # "structure", "grid", "palette" and "peaks" are this project's additions (weight 0 = the paper):
    # see adain_losses, grid_loss, palette_loss and peaks_loss.
    "adain": {
        "content": 1.0,
        "style": 10.0,
        "gram": 0.0,
        "structure": 0.0,
        "grid": 0.0,
        "palette": 0.0,
        "peaks": 0.0,
    },
    "sanet": {
        "content": 1.0,
        "style": 3.0,
        "gram": 0.0,
        "identity1": 50.0,
        "identity2": 1.0,
        "gan": 0.0,
        "structure": 0.0,
        "grid": 0.0,
        "palette": 0.0,
        "peaks": 0.0,
    },
    # The authors' RAST code with these weights ("SANet-replaced") drops the plain content/style
    # losses: the restoration terms replace them. Their "combined" variant keeps them (0.25 each, with
    # the other weights scaled down); set content/style weights > 0 to get that behaviour.
    "rast": {
        "content_transitive": 2.0,
        "style_transitive": 2.0,
        "style_diff": 2.0,
        "content_restoration": 1.0,
        "style_restoration": 1.0,
        "identity1": 50.0,
        "identity2": 1.0,
        "gan": 5.0,
        "content": 0.0,
        "style": 0.0,
        "gram": 0.0,
        "structure": 0.0,
        "grid": 0.0,
        "palette": 0.0,
        "peaks": 0.0,
    },
}

GRID_DESCRIPTION = (
    "mean square, in grey levels, of the output's repeated 2, 4 and 8 px tile (the decoder's upsampling "
    "cells), summed over the periods (not in the paper)"
)

STRUCTURE_DESCRIPTION = (
    "MSE of mean-variance-normalised features at relu2_1 + relu3_1, output vs content (not in the paper)"
)
PEAKS_DESCRIPTION = (
    "mean square, in grey levels, of the output's spectral peaks (power over 30x its ring's level) at "
    "frequencies where neither the content nor the style has one (not in the paper)"
)
PALETTE_DESCRIPTION = (
    "mean/std MSE of the output's RGB channels against the style image's, in grey levels (not in the paper)"
)

GRAM_DESCRIPTION = (
    "MSE of Gram matrices of scaled features, output vs style, on the style loss network (not in the paper)"
)

# What each term is, for model cards and help texts.
TERM_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "adain": {
        "content": "MSE to the AdaIN target t at relu4_1",
        "style": "mean/std MSE at relu1_1..relu4_1",
        "gram": GRAM_DESCRIPTION + " at relu1_1..relu4_1",
        "structure": STRUCTURE_DESCRIPTION,
        "grid": GRID_DESCRIPTION,
        "palette": PALETTE_DESCRIPTION,
        "peaks": PEAKS_DESCRIPTION,
        "recon": f"{RECON_PIXEL_WEIGHT:g} x pixel MSE + scaled feature MSE at relu1_1..relu4_1 of the "
        "decoder on the content's own features (and skips) to the content (not in the paper)",
    },
    "sanet": {
        "content": "MSE of mean-variance-normalised features at relu4_1 + relu5_1 (output vs content)",
        "style": "mean/std MSE at relu1_1..relu5_1 (output vs style)",
        "gram": GRAM_DESCRIPTION + " at relu1_1..relu5_1",
        "identity1": "pixel MSE of decode(T(c,c)) to c plus decode(T(s,s)) to s",
        "identity2": "feature MSE at relu1_1..relu5_1 of the same identity images",
        "gan": "LSGAN generator loss of the output against a multi-scale PatchGAN discriminator trained "
        "on the style images (RAST's; not in the paper)",
        "structure": STRUCTURE_DESCRIPTION,
        "grid": GRID_DESCRIPTION,
        "palette": PALETTE_DESCRIPTION,
        "peaks": PEAKS_DESCRIPTION,
    },
    "rast": {
        "content_transitive": "normalised content loss of each path's content restoration to its source",
        "style_transitive": "mean/std style loss of each path's style restoration to its source",
        "style_diff": "1 / (style loss of each output to the image whose style it must drop), both paths",
        "content_restoration": "normalised content loss between the two paths' restorations (cross terms)",
        "style_restoration": "mean/std style loss between the two paths' restorations (cross terms)",
        "identity1": "pixel MSE of decode(T(c,c)) to c plus decode(T(s,s)) to s",
        "identity2": "feature MSE at relu1_1..relu5_1 of the same identity images",
        "gan": "LSGAN generator loss of both outputs against their multi-scale PatchGAN discriminators",
        "content": "SANet content loss of both outputs (logged; in the objective only if weighted)",
        "style": "SANet style loss of both outputs (logged; in the objective only if weighted)",
        "gram": GRAM_DESCRIPTION + " at relu1_1..relu5_1, both outputs (T(s, c) against the content)",
        "structure": STRUCTURE_DESCRIPTION + "; T(s, c) against the style",
        "grid": GRID_DESCRIPTION + " (both outputs)",
        "palette": PALETTE_DESCRIPTION + "; T(s, c) against the content",
        "peaks": PEAKS_DESCRIPTION + " (both outputs)",
    },
}


# ---- building blocks ----------------------------------------------------------------------------------


def mean_std_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MSE between channel means plus MSE between channel stds (AdaIN's style loss for one layer)."""
    ma, sa = mean_std(a)
    mb, sb = mean_std(b)
    return F.mse_loss(ma, mb) + F.mse_loss(sa, sb)


def style_loss(
    a: Feats, b: Feats, layers: tuple[str, ...] = STYLE_LAYERS, weights: Mapping[str, float] | None = None
) -> torch.Tensor:
    """Sum over ``layers`` of :func:`mean_std_loss` (SANet's / RAST's ``calc_style_loss`` summed),
    each layer times its entry in ``weights`` (default 1; the module docstring's ``style_layers``)."""
    weights = weights or {}
    return _sum(weights.get(k, 1.0) * mean_std_loss(a[k], b[k]) for k in layers)


def gram_loss(
    a: Feats, b: Feats, layers: tuple[str, ...] = STYLE_LAYERS, weights: Mapping[str, float] | None = None
) -> torch.Tensor:
    """Gatys et al.'s style loss: MSE between the layers' Gram matrices (:func:`stylecore.ops.gram`),
    summed over ``layers``, each times its entry in ``weights`` (default 1). Computed in fp32: a Gram
    matrix sums every position's products."""
    weights = weights or {}
    with torch.autocast(a[layers[0]].device.type, enabled=False):
        return _sum(weights.get(k, 1.0) * F.mse_loss(gram(a[k].float()), gram(b[k].float())) for k in layers)


def normalised_content_loss(
    a: Feats, b: Feats, layers: tuple[str, ...] = SANET_CONTENT_LAYERS
) -> torch.Tensor:
    """SANet's content loss: MSE of mean-variance-normalised features, summed over ``layers``
    (SANet: relu4_1, relu5_1; AdaIN's structure term: relu2_1, relu3_1)."""
    return _sum(F.mse_loss(mean_variance_norm(a[k]), mean_variance_norm(b[k])) for k in layers)


def feature_mse(a: Feats, b: Feats, layers: tuple[str, ...] = STYLE_LAYERS) -> torch.Tensor:
    """Plain MSE of features summed over ``layers`` (SANet's second identity loss)."""
    return _sum(F.mse_loss(a[k], b[k]) for k in layers)


def grid_loss(images: torch.Tensor) -> torch.Tensor:
    """The pattern the images repeat with the decoder's upsampling periods: the mean square, in 8-bit
    levels and per RGB channel, of :func:`stylecore.metrics.periodic_tile`, summed over 2, 4 and 8 px.
    Non-periodic content leaves a small floor (it averages out over the cells, less so on small crops);
    a grid adds its full size, in the same direction every batch. Periods whose cells do not fit 5
    times into the crop (8 px below 40 px crops) are left out."""
    x = images.float() * 255
    periods = [p for p in GRID_PERIODS if min(x.shape[-2:]) >= 5 * p]
    return _sum(periodic_tile(x, p).pow(2).mean() for p in periods)


def peaks_loss(images: torch.Tensor, *references: torch.Tensor) -> torch.Tensor:
    """A texture the decoder adds whatever its inputs: the batch mean of
    :func:`stylecore.metrics.spectral_peaks` (grey levels squared) at frequencies where none of
    ``references`` (the content and style crops) has a peak. A style's own regular strokes, or a
    content's windows, may come through; a stripe of the decoder's own may not."""
    return spectral_peaks(images, *references).mean()


def palette_loss(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The palette: :func:`mean_std_loss` of the RGB channels, in 8-bit levels (a colour 10 levels off
    in every channel costs 100)."""
    return mean_std_loss(images.float() * 255, reference.float() * 255)


def transfer(transformer: nn.Module, content: Feats, style: Feats) -> torch.Tensor:
    """The SANet transform of content features with a style's features: the decoder input."""
    return transformer(content["relu4_1"], style["relu4_1"], content["relu5_1"], style["relu5_1"])


def sanet_decode(transformer: nn.Module, decoder: nn.Module, content: Feats, style: Feats) -> torch.Tensor:
    """``D(T(c, s))`` from the two images' features; a :class:`~stylecore.nets.decoder.SkipDecoder`
    also gets the content's skip levels AdaIN-ed to the style's statistics (what
    :class:`~stylecore.methods.sanet.SANet` feeds it at inference)."""
    levels = adain_levels(skip_layers(decoder), content, style)
    levels["relu4_1"] = transfer(transformer, content, style)
    return decode(decoder, levels)


def adain_levels(layers: Iterable[str], content: Feats, style: Feats) -> Feats:
    """The content's features at ``layers``, each given the style's channel mean/std there."""
    return {level: adain(content[level], *mean_std(style[level])) for level in layers}


def _sum(terms) -> torch.Tensor:
    total = None
    for t in terms:
        total = t if total is None else total + t
    assert total is not None
    return total


Measure = Callable[[Feats], Feats]


def feature_measure(encoder: VGGEncoder, scale_features: bool) -> Measure:
    """What the losses compare: the raw features, or (``scale_features``) each layer divided by its
    mean activation (:mod:`stylecore.train.scales`), so that weights set for ``vgg_normalised`` keep
    their balance on an encoder with larger activations. Networks always get the raw features."""
    if scale_features:
        return lambda feats: scaled(encoder, dict(feats))
    return _same


def _same(feats: Feats) -> Feats:
    return feats


def style_features(
    network: VGGEncoder, out: torch.Tensor, style: torch.Tensor, layers: tuple[str, ...]
) -> tuple[Feats, Feats]:
    """The output's and the style image's features on a loss network, each layer divided by its scale
    (:mod:`stylecore.train.scales`) whatever ``scale_features`` says: two networks' raw scales
    differ ~15x, and a Gram matrix squares them."""
    measure = feature_measure(network, True)
    with torch.no_grad():
        target = measure(network(style, layers))
    return measure(network(out, layers)), target


def style_terms(
    encoder: VGGEncoder,
    measure: Measure,
    raw: tuple[Feats, Feats],
    images: tuple[torch.Tensor, torch.Tensor],
    layers: tuple[str, ...],
    style_layers: Mapping[str, float] | None,
    style_encoder: VGGEncoder | None,
) -> dict[str, torch.Tensor]:
    """``style`` (mean/std) and ``gram`` (Gram matrices) of the output against the style image.

    ``raw`` are the output's and the style's raw ``encoder`` features, ``images`` the two images. On the
    encoder, ``style`` compares what ``measure`` gives (as ``scale_features`` says) and ``gram`` scaled
    features; on a ``style_encoder`` both compare its scaled features (:func:`style_features`)."""
    if style_encoder is None:
        out, style = raw
        mean_std_pair: tuple[Feats, Feats] = (measure(out), measure(style))
        gram_pair: tuple[Feats, Feats] = (scaled(encoder, dict(out)), scaled(encoder, dict(style)))
    else:
        mean_std_pair = gram_pair = style_features(style_encoder, *images, layers)
    return {
        "style": style_loss(*mean_std_pair, layers, style_layers),
        "gram": gram_loss(*gram_pair, layers, style_layers),
    }


# ---- AdaIN -------------------------------------------------------------------------------------------


def adain_losses(
    encoder: VGGEncoder,
    decoder: torch.nn.Module,
    content: torch.Tensor,
    style: torch.Tensor,
    *,
    scale_features: bool = False,
    style_layers: Mapping[str, float] | None = None,
    recon: bool = False,
    style_encoder: VGGEncoder | None = None,
) -> dict[str, torch.Tensor]:
    """Huang & Belongie 2017, eq. 11-13: content MSE to the AdaIN target t at relu4_1, and the style
    mean/std loss at relu1_1..relu4_1, on the re-encoded output g(t). Unweighted terms.

    ``structure`` (not in the paper; weight 0 by default) compares the output's mean-variance-normalised
    relu2_1/relu3_1 features with the content's, as SANet's content loss does at relu4_1/relu5_1. The
    normalisation removes each channel's mean and std, which the style owns, and keeps where things
    are. vgg16-hed's relu4_1 was fine-tuned for edges and says little about the surfaces between them,
    so with the paper's loss alone the decoder is free to paint them away.

    A :class:`~stylecore.nets.decoder.SkipDecoder` also gets the content's relu1_1..relu3_1 AdaIN-ed to
    the style's statistics there (what :class:`~stylecore.methods.adain.AdaIN` feeds it). ``recon`` adds
    the ``recon`` term (:func:`reconstruction_loss`) on the content's own features.

    ``style_encoder`` (not in the paper) computes the style term on another loss network, e.g.
    ``vgg16-imagenet``, on its features divided by their layer scales (:mod:`stylecore.train.scales`)
    whatever ``scale_features`` says: the content term stays on ``encoder``, where the AdaIN target t
    lives.
    vgg16-hed's statistics describe a painting's strokes as rounded, outlined cells (Gatys on either
    network shows it), ImageNet VGG16's as strokes.
    """
    measure = feature_measure(encoder, scale_features)
    skips = skip_layers(decoder)
    with torch.no_grad():
        style_feats = encoder(style, ADAIN_STYLE_LAYERS)
        wanted = ADAIN_STYLE_LAYERS if (skips or recon) else (*STRUCTURE_LAYERS, "relu4_1")
        content_feats = encoder(content, wanted)
        levels = adain_levels(("relu4_1", *skips), content_feats, style_feats)
        t = levels["relu4_1"]
    out = decode(decoder, levels)
    raw_out = encoder(out, ADAIN_STYLE_LAYERS)
    out_feats = measure(raw_out)
    content_term = F.mse_loss(out_feats["relu4_1"], measure({"relu4_1": t})["relu4_1"])
    raw, images = (raw_out, style_feats), (out, style)
    statistics = style_terms(encoder, measure, raw, images, ADAIN_STYLE_LAYERS, style_layers, style_encoder)
    structure_term = normalised_content_loss(out_feats, content_feats, STRUCTURE_LAYERS)
    terms = {
        "content": content_term,
        **statistics,
        "structure": structure_term,
        "grid": grid_loss(out),
        "palette": palette_loss(out, style),
        "peaks": peaks_loss(out, content, style),
    }
    if recon:
        terms["recon"] = reconstruction_loss(encoder, decoder, content, content_feats)
    return terms


def reconstruction_loss(
    encoder: VGGEncoder, decoder: torch.nn.Module, content: torch.Tensor, content_feats: Feats
) -> torch.Tensor:
    """The decoder on the content's own features (and skips) must give the content back:
    ``RECON_PIXEL_WEIGHT`` x pixel MSE + feature MSE at relu1_1..relu4_1, each layer divided by its mean
    activation (:mod:`stylecore.train.scales`, whatever ``scale_features`` says), so the four layers
    and the pixels weigh alike. Not in the AdaIN paper; WCT and LST train their decoders this way."""
    same = decode(decoder, content_feats)
    a = scaled(encoder, encoder(same, ADAIN_STYLE_LAYERS))
    b = scaled(encoder, {k: content_feats[k] for k in ADAIN_STYLE_LAYERS})
    return RECON_PIXEL_WEIGHT * F.mse_loss(same, content) + feature_mse(a, b, ADAIN_STYLE_LAYERS)


# ---- SANet ------------------------------------------------------------------------------------------


def identity_losses(
    encoder: VGGEncoder,
    transformer: nn.Module,
    decoder: nn.Module,
    images: tuple[torch.Tensor, ...],
    feats: tuple[Feats, ...],
    measure: Measure = _same,
) -> dict[str, torch.Tensor]:
    """SANet eq. 8: each image stylized with itself must come back. ``identity1`` is the pixel MSE,
    ``identity2`` the feature MSE summed over relu1_1..relu5_1, both summed over the images.
    ``feats`` are the images' raw features."""
    pixel, feature = [], []
    for image, f in zip(images, feats, strict=True):
        same = sanet_decode(transformer, decoder, f, f)
        pixel.append(F.mse_loss(same, image))
        feature.append(feature_mse(measure(encoder(same, STYLE_LAYERS)), measure(f)))
    return {"identity1": _sum(pixel), "identity2": _sum(feature)}


def sanet_losses(
    encoder: VGGEncoder,
    transformer: nn.Module,
    decoder: nn.Module,
    content: torch.Tensor,
    style: torch.Tensor,
    *,
    scale_features: bool = False,
    identity: bool = True,
    style_layers: Mapping[str, float] | None = None,
    style_encoder: VGGEncoder | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Park & Lee 2019: content (normalised, relu4_1 + relu5_1), style (mean/std, relu1_1..relu5_1)
    of ``decode(T(c, s))`` and the two identity losses; and this project's additions (weight 0 by
    default): the structure term (as :func:`adain_losses`'), :func:`grid_loss`,
    :func:`palette_loss` and :func:`peaks_loss` of the output. Unweighted terms, and the output (for
    the optional GAN term, which needs a discriminator: :func:`generator_gan_loss`).

    ``identity=False`` leaves the identity terms out: their two extra decoder and encoder passes
    are most of a step's cost, wasted when both their weights are 0. ``style_encoder``: the style term
    on another loss network, as in :func:`adain_losses`."""
    measure = feature_measure(encoder, scale_features)
    with torch.no_grad():  # the encoder is frozen and the inputs are data: no graph needed here
        fc = encoder(content, STYLE_LAYERS)
        fs = encoder(style, STYLE_LAYERS)
    out = sanet_decode(transformer, decoder, fc, fs)
    fo_raw = encoder(out, STYLE_LAYERS)
    fo, mc = measure(fo_raw), measure(fc)
    images, feats = (content, style), (fc, fs)
    ident = identity_losses(encoder, transformer, decoder, images, feats, measure) if identity else {}
    statistics = style_terms(
        encoder, measure, (fo_raw, fs), (out, style), STYLE_LAYERS, style_layers, style_encoder
    )
    terms = {
        "content": normalised_content_loss(fo, mc),
        **statistics,
        **ident,
        "structure": normalised_content_loss(fo, mc, STRUCTURE_LAYERS),
        "grid": grid_loss(out),
        "palette": palette_loss(out, style),
        "peaks": peaks_loss(out, content, style),
    }
    return terms, out


# ---- RAST --------------------------------------------------------------------------------------------


class RastImages(NamedTuple):
    """The two stylizations the discriminators judge."""

    stylized: torch.Tensor  # decode(T(c, s)): the content in the style (judged against real styles)
    reversed: torch.Tensor  # decode(T(s, c)): the style image in the content's style (against contents)


def style_difference_loss(output: Feats, source: Feats) -> torch.Tensor:
    """RAST's L_diff for one output: ``1 / style_loss(output, source)``.

    ``source`` is the image whose style the output must lose (the content photo for ``T(c, s)``).
    Minimising the reciprocal pushes the style distance up; the loss falls as the distance grows.
    """
    return 1.0 / style_loss(output, source)


def rast_losses(
    encoder: VGGEncoder,
    transformer: nn.Module,
    decoder: nn.Module,
    content: torch.Tensor,
    style: torch.Tensor,
    *,
    scale_features: bool = False,
    identity: bool = True,
    style_layers: Mapping[str, float] | None = None,
    style_encoder: VGGEncoder | None = None,
) -> tuple[dict[str, torch.Tensor], RastImages]:
    """RAST's generator terms (all but the GAN term, which needs the discriminators) and the two outputs.

    Two paths, as in the authors' code (T is the SANet transform, D the decoder, E the encoder):

    * right: ``o1 = D(T(c, s))``; content restoration ``rc1 = D(T(o1, c))`` (o1 re-stylized with
      the content as style), style restoration ``rs1 = D(T(s, o1))`` (the style image stylized with
      o1 as style);
    * left, the mirror: ``o2 = D(T(s, c))``; ``rc2 = D(T(c, o2))``; ``rs2 = D(T(o2, s))``.

    Terms (both paths summed): content-transitive ``Lc(rc1, c) + Lc(rs2, s)``; style-transitive
    ``Ls(rs1, s) + Ls(rc2, c)``; style-difference ``1/Ls(o1, c) + 1/Ls(o2, s)``; content restoration
    ``Lc(rc1, rc2) + Lc(rs1, rs2)`` and style restoration ``Ls(rc1, rc2) + Ls(rs1, rs2)`` (the cross
    terms between the two paths); the SANet identity losses; this project's structure term,
    :func:`grid_loss` and :func:`palette_loss` of both outputs (weight 0 by default); and, for
    logging (weight 0 by default, as in the authors' final code), SANet's content/style losses of both
    outputs, and the Gram term of both (:func:`style_terms`). ``Lc`` is :func:`normalised_content_loss`,
    ``Ls`` :func:`style_loss`. ``identity=False`` leaves the identity terms out (as :func:`sanet_losses`);
    ``style_encoder`` puts SANet's style term and the Gram term on another loss network, as in
    :func:`adain_losses` (RAST's own restoration terms stay on ``encoder``).
    """
    measure = feature_measure(encoder, scale_features)
    with torch.no_grad():
        fc = encoder(content, STYLE_LAYERS)
        fs = encoder(style, STYLE_LAYERS)
    mc, ms = measure(fc), measure(fs)

    def stylize(c: Feats, s: Feats) -> tuple[torch.Tensor, Feats, Feats]:
        """Decoded T(c, s), its raw features (for the next transform) and its measured features."""
        image = sanet_decode(transformer, decoder, c, s)
        feats = encoder(image, STYLE_LAYERS)
        return image, feats, measure(feats)

    o1, f1, m1 = stylize(fc, fs)
    _, _, mrc1 = stylize(f1, fc)
    _, _, mrs1 = stylize(fs, f1)
    o2, f2, m2 = stylize(fs, fc)
    _, _, mrc2 = stylize(fc, f2)
    _, _, mrs2 = stylize(f2, fs)
    images, feats = (content, style), (fc, fs)
    ident = identity_losses(encoder, transformer, decoder, images, feats, measure) if identity else {}
    # each output against the image whose style it must take: T(c, s) the style, T(s, c) the content
    on = (encoder, measure)
    stats = [
        style_terms(*on, (f1, fs), (o1, style), STYLE_LAYERS, style_layers, style_encoder),
        style_terms(*on, (f2, fc), (o2, content), STYLE_LAYERS, style_layers, style_encoder),
    ]

    terms = {
        "content_transitive": normalised_content_loss(mrc1, mc) + normalised_content_loss(mrs2, ms),
        "style_transitive": style_loss(mrs1, ms) + style_loss(mrc2, mc),
        "style_diff": style_difference_loss(m1, mc) + style_difference_loss(m2, ms),
        "content_restoration": normalised_content_loss(mrc1, mrc2) + normalised_content_loss(mrs1, mrs2),
        "style_restoration": style_loss(mrc1, mrc2) + style_loss(mrs1, mrs2),
        **ident,
        "content": normalised_content_loss(m1, mc) + normalised_content_loss(m2, ms),
        "style": stats[0]["style"] + stats[1]["style"],
        "gram": stats[0]["gram"] + stats[1]["gram"],
        "structure": normalised_content_loss(m1, mc, STRUCTURE_LAYERS)
        + normalised_content_loss(m2, ms, STRUCTURE_LAYERS),
        "grid": grid_loss(o1) + grid_loss(o2),
        "palette": palette_loss(o1, style) + palette_loss(o2, content),
        "peaks": peaks_loss(o1, content, style) + peaks_loss(o2, style, content),
    }
    return terms, RastImages(o1, o2)


# ---- GAN ---------------------------------------------------------------------------------------------

# What a discriminator judges: (discriminator, real images, generated images).
Judged = Sequence[tuple[MultiScalePatchGAN, torch.Tensor, torch.Tensor]]


def rast_judged(
    d_style: MultiScalePatchGAN,
    d_content: MultiScalePatchGAN,
    content: torch.Tensor,
    style: torch.Tensor,
    images: RastImages,
) -> Judged:
    """RAST's pairing: real styles vs ``T(c, s)`` outputs, real contents vs ``T(s, c)`` outputs."""
    return [(d_style, style, images.stylized), (d_content, content, images.reversed)]


def discriminator_loss(judged: Judged) -> torch.Tensor:
    """LSGAN loss of the discriminators: real images to 1, generated ones to 0 (generated images
    detached: this trains the discriminators only)."""
    return sum(  # type: ignore[return-value]
        d.lsgan_loss(real, True) + d.lsgan_loss(fake.detach(), False) for d, real, fake in judged
    )


def generator_gan_loss(judged: Judged) -> torch.Tensor:
    """LSGAN generator loss: every generated image should be judged real by its discriminator."""
    return sum(d.lsgan_loss(fake, True) for d, _, fake in judged)  # type: ignore[return-value]
