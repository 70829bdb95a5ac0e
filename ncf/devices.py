"""Which torch device a setting (the trainer's --device; the service's EMBEDDING_DEVICE, TRAINING_DEVICE) means
on this machine."""
from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(setting: str, torch_module=None) -> str:
    """"cpu", "cuda" or "mps": `auto` picks CUDA, then MPS, when torch sees one, else the CPU; an accelerator
    asked for but not seen is refused (ValueError), so a misconfigured machine does not silently run on CPU.
    `torch_module` is torch itself (tests pass a stand-in to play a machine with accelerators)."""
    if setting not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {setting!r}")
    if setting == "cpu":
        return "cpu"
    if torch_module is None:
        import torch as torch_module
    seen = {"cuda": torch_module.cuda.is_available(), "mps": _mps_available(torch_module)}
    if setting == "auto":
        return next((device for device, available in seen.items() if available), "cpu")
    if not seen[setting]:
        raise ValueError(f"device {setting!r} was asked for but torch sees none here: use auto or cpu")
    return setting


def _mps_available(torch_module) -> bool:
    backend = getattr(torch_module.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
