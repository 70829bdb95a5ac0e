"""The int8 variant of an exported encoder: activation outliers smoothed into the weights, then onnxruntime's
dynamic quantisation (8-bit weights per channel, activations quantised per batch at run time).

Dynamic quantisation gives each MatMul's input one scale for the whole batch. all-MiniLM's hidden states have
a few outlier channels (channel 99 reaches ~28 on the [CLS] token, most values are below 1), so that scale
left ordinary values a couple of quantisation steps wide and vectors drifted to cosine 0.969 of torch's.
`smooth` first divides every Linear's input per channel by s and multiplies the weight's matching input
column by s (SmoothQuant, Xiao et al. 2023): the same function in fp32, with the outliers moved into
the weights, which are quantised per output channel. s = max|x|^ALPHA / max|w|^(1 - ALPHA), at least 1 (only
the channels wider than their weights shrink), from the activations of CALIBRATION_TEXTS mock catalogue
texts. Weights are quantised as uint8 (QUInt8): int8 weights lost more once the activations were smoothed
(what was measured and tried: docs/decisions/0011-int8-encoder-fidelity.md).
"""
from __future__ import annotations

from pathlib import Path

import torch

ALPHA = 0.8  # 0.5 (the paper's default) drifted to cosine 0.92–0.94 here; 0.7–0.8 gave ≥ 0.99
CALIBRATION_TEXTS = 256
CALIBRATION_SEED = 5  # not the catalogue seed of the benchmarks (42) nor of the tests (7)


class SmoothedLinear(torch.nn.Module):
    """`linear` with its input divided per channel by `scale` and its weight columns multiplied by it."""

    def __init__(self, linear: torch.nn.Linear, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("inverse", 1 / scale)
        self.linear = linear
        linear.weight.data *= scale[None, :]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.linear(inputs * self.inverse)


def calibration_texts() -> list[str]:
    """Product texts as the service embeds them (the deterministic mock catalogue)."""
    from app.core.catalog import Product, embedding_text
    from seed.mock_catalog import generate_products

    return [embedding_text(Product.model_validate(record))
            for record in generate_products(CALIBRATION_TEXTS, seed=CALIBRATION_SEED)]


def smooth(transformer: torch.nn.Module, tokenizer, max_length: int) -> None:
    """Replace every Linear of `transformer` by its SmoothedLinear (see the module doc), in place."""
    linears = {name: module for name, module in transformer.named_modules() if isinstance(module, torch.nn.Linear)}
    peaks: dict[str, torch.Tensor] = {}

    def record(name: str):
        def hook(_module, inputs):
            peak = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(dim=0)
            peaks[name] = torch.maximum(peaks[name], peak) if name in peaks else peak
        return hook

    hooks = [module.register_forward_pre_hook(record(name)) for name, module in linears.items()]
    texts = calibration_texts()
    with torch.no_grad():
        for start in range(0, len(texts), 32):
            transformer(**tokenizer(texts[start:start + 32], padding=True, truncation=True, max_length=max_length,
                                    return_tensors="pt"))
    for hook in hooks:
        hook.remove()
    for name, linear in linears.items():
        if name not in peaks:  # not on the path to the token embeddings
            continue
        weight_peak = linear.weight.detach().abs().amax(dim=0).clamp(min=1e-5)
        scale = (peaks[name].clamp(min=1e-5) ** ALPHA / weight_peak ** (1 - ALPHA)).clamp(min=1)
        parent_name, _, attribute = name.rpartition(".")
        setattr(transformer.get_submodule(parent_name), attribute, SmoothedLinear(linear, scale))


def quantize(smoothed_onnx: Path, target: Path) -> None:
    """onnxruntime's dynamic quantisation of the smoothed export: uint8 weights per channel, MatMuls only
    (the embedding tables stay fp32: quantising them too drifted to cosine 0.89)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(smoothed_onnx), str(target), weight_type=QuantType.QUInt8, op_types_to_quantize=["MatMul"],
                     per_channel=True)
