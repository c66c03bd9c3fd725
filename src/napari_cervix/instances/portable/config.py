"""Reading a stored mmdet model config for the torch backend, key by key.

The torch backend implements the inference of exactly the shapes the IMBMDCR presets use. A config that
asks for anything else (another block, an FPN with extra convs, a class-specific box regressor...) must be
refused with the key that asks for it, not built into a network that silently differs from mmdet's.
"""

from __future__ import annotations

# Keys that only concern training or initialisation: inference reads none of them.
TRAINING_ONLY = frozenset(
    {
        "loss_cls",
        "loss_bbox",
        "loss_mask",
        "init_cfg",
        "pretrained",
        "norm_eval",
        "frozen_stages",
        "with_cp",
        "zero_init_residual",
        "stage_loss_weights",
        "mask_loss_weight",
        "train_cfg",
        "pad_mask",
        "mask_pad_value",
        "pad_seg",
        "seg_pad_value",
        "boxtype2tensor",
        "non_blocking",
        "batch_augments",
        "requires_grad",
        "debug",
    }
)


class UnsupportedConfig(ValueError):
    """The stored model config asks for something the torch backend does not implement (the message names
    the key); such a model runs through mmdet only (``backend="mmdet"``)."""


def _same(a, b) -> bool:
    """Config equality across JSON round trips (tuples come back as lists)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


class Section:
    """One dict of a model config. Every key must be either read (:meth:`get`, :meth:`expect`,
    :meth:`section`) or training-only, else :meth:`close` refuses the config naming the unknown key."""

    def __init__(self, cfg, path: str):
        if not isinstance(cfg, dict):
            raise UnsupportedConfig(f"{path} must be a dict of options, not {type(cfg).__name__}")
        self.cfg, self.path, self.read = cfg, path, set()

    def get(self, key: str, default=None):
        self.read.add(key)
        return self.cfg.get(key, default)

    def expect(self, key: str, *supported, default=None):
        """The value of ``key`` (``default`` when absent), which must be one of ``supported``."""
        value = self.get(key, default)
        if not any(_same(value, s) for s in supported):
            allowed = " or ".join(repr(s) for s in supported)
            raise UnsupportedConfig(
                f"{self.path}.{key} = {value!r} is not supported by the torch backend (supported: {allowed}); "
                "run this model with backend='mmdet'"
            )
        return value

    def section(self, key: str, default=None) -> Section:
        value = self.get(key, default)
        return Section({} if value is None else value, f"{self.path}.{key}")

    def close(self) -> None:
        unknown = sorted(set(self.cfg) - self.read - TRAINING_ONLY)
        if unknown:
            raise UnsupportedConfig(
                f"{self.path}.{unknown[0]} is not supported by the torch backend"
                + (f" (nor {', '.join(unknown[1:])})" if len(unknown) > 1 else "")
                + "; run this model with backend='mmdet'"
            )
