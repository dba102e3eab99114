"""Gatys: "Image Style Transfer Using Convolutional Neural Networks" (Gatys, Ecker & Bethge, CVPR 2016).

Optimises the pixels of the output so that its Gram matrices ``G = F F^T / (h w)`` at relu1_1..relu5_1
match the style's and its relu4_2 activation matches the content's. Needs no trained weights: the
always-available baseline and the quality reference.

Both loss terms are normalised by the size of their target (``||G - S||^2 / ||S||^2``), so the
default weights mean the same thing for every encoder (Caffe-scaled VGG16 activations are ~100x the
size of the normalised VGG19's). Every image of a batch has its own loss, summed, so with Adam
(element-wise updates) a batch gives the same result as one image at a time; LBFGS, whose line
search is global, runs one image at a time.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field

from stylecore.methods.base import MethodParams, Stylizer
from stylecore.methods.registry import register_method
from stylecore.nets.encoder import STYLE_LAYERS, VGGEncoder
from stylecore.ops import gram

CONTENT_LAYER = "relu4_2"


class GatysParams(MethodParams):
    steps: int = Field(200, ge=1, le=20000, description="optimisation steps (LBFGS: function evaluations)")
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    lr: float | None = Field(None, gt=0, description="learning rate (default: 1.0 for LBFGS, 0.05 for Adam)")
    style_weight: float = Field(1e4, ge=0)
    content_weight: float = Field(1.0, ge=0)
    init: Literal["content", "noise"] = "content"


@register_method
class Gatys(Stylizer):
    name: ClassVar[str] = "gatys"
    Params: ClassVar[type[MethodParams]] = GatysParams
    supports_masks: ClassVar[bool] = False

    @classmethod
    def random(cls, encoder: VGGEncoder | None = None, *, seed: int = 0) -> Gatys:
        torch.manual_seed(seed)
        return cls(encoder or VGGEncoder("vgg16-hed"))

    def _encode_style(self, style: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder(style, STYLE_LAYERS)
        return {layer: gram(feats[layer]) for layer in STYLE_LAYERS}

    def _stylize(self, content, codes, params, *, weights, masks, generator):
        p: GatysParams = params  # type: ignore[assignment]
        if weights is None:
            targets = dict(codes[0].tensors)
        else:
            targets = {
                layer: sum(float(w) * c.tensors[layer] for w, c in zip(weights, codes, strict=True))
                for layer in STYLE_LAYERS
            }
        if p.optimizer == "lbfgs":
            outs = [
                self._optimise(content[i : i + 1], targets, p, generator) for i in range(content.shape[0])
            ]
            return torch.cat(outs)
        return self._optimise(content, targets, p, generator)

    def _optimise(self, content, targets: dict[str, torch.Tensor], p: GatysParams, generator) -> torch.Tensor:
        with torch.no_grad():
            content_target = self.encoder.encode(content, CONTENT_LAYER)
        c_norm = content_target.pow(2).sum(dim=(1, 2, 3)).clamp_min(1e-8)
        s_norms = {k: v.pow(2).sum(dim=(1, 2)).clamp_min(1e-8) for k, v in targets.items()}
        if p.init == "noise":
            noise = torch.rand(content.shape, generator=generator, device="cpu").to(content)
            x = noise.requires_grad_(True)
        else:
            x = content.clone(memory_format=torch.contiguous_format).requires_grad_(True)
        style_weight = p.style_weight * p.alpha

        bf16 = p.precision == "bf16"

        def loss_fn() -> torch.Tensor:
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
                feats = self.encoder(x, (*STYLE_LAYERS, CONTENT_LAYER))
            feats = {k: v.float() for k, v in feats.items()}
            loss = (
                p.content_weight * (feats[CONTENT_LAYER] - content_target).pow(2).sum(dim=(1, 2, 3)) / c_norm
            )
            for layer in STYLE_LAYERS:
                diff = (gram(feats[layer]) - targets[layer]).pow(2).sum(dim=(1, 2))
                loss = loss + style_weight / len(STYLE_LAYERS) * diff / s_norms[layer]
            return loss.sum()

        if p.optimizer == "adam":
            opt = torch.optim.Adam([x], lr=p.lr or 0.05)
            for _ in range(p.steps):
                opt.zero_grad(set_to_none=True)
                loss_fn().backward()
                opt.step()
                with torch.no_grad():
                    x.clamp_(0.0, 1.0)
        else:
            chunk = 20  # evaluations between clamps back into the valid pixel range
            done = 0
            while done < p.steps:
                n = min(chunk, p.steps - done)
                opt = torch.optim.LBFGS([x], lr=p.lr or 1.0, max_iter=n, max_eval=n, history_size=50)

                def closure(opt: torch.optim.Optimizer = opt) -> torch.Tensor:
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn()
                    loss.backward()
                    return loss

                opt.step(closure)
                with torch.no_grad():
                    x.clamp_(0.0, 1.0)
                done += n
        return x.detach()
