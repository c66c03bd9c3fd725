"""The one training loop of every task (semantic U-Nets, instance detectors, cell classifiers).

A task brings only what is its own — the model, the optimizer, the loss of one step's batch, a validation
score and the metadata of its weights — and :class:`Trainer` does the rest the same way for all three:

* **seed and device**: :func:`seed_everything` (python, numpy, torch), :func:`pick_device` (``"auto"`` → CUDA
  when there is one, else the CPU) and bfloat16 autocast where it is faster (CUDA, or a CPU with native bf16);
* **schedule by steps and by wall time**: with ``max_minutes`` the schedule's position is whichever is further
  along, the steps done or the share of the time budget spent, so the learning rate has annealed when the
  budget ends (weights taken mid-schedule are worse). The budget counts the earlier sessions of a resumed run.
  :func:`warmup_cosine`, :func:`one_cycle` or the task's own function maps the position to the learning rate;
* **checkpoint and resume**: every ``checkpoint_minutes`` one file (``last.pt``) with only tensors, numbers,
  strings, lists and dicts — model, optimizer, step, time spent, best score, every random state (python,
  numpy, torch, CUDA and the task's own generators) and the run's metadata as JSON — loaded back with
  ``torch.load(weights_only=True)``, so resuming executes no code from the file and continues exactly where
  the uninterrupted run would have gone;
* **best keeping**: a ``validate`` callback's score decides; the best weights are written as safetensors through
  :func:`napari_cervix.registry.save_weights` (with a ``.json`` copy of their metadata beside them) and replaced
  only when the score improves;
* **atomic writes**: every file goes through :func:`napari_cervix.io._atomic.atomic_path`, so an interrupted
  write never leaves a truncated file under the real name.

Why our own small module and not mmengine's Runner (already installed for the instance task) or another
training library (Lightning, Ignite, accelerate): mmengine's checkpoints carry its message hub's
``HistoryBuffer`` objects, which torch ≥ 2.6 loads only with ``weights_only=False`` (unpickling can run code
from the file; open-mmlab/mmengine#1655 and #1650, with mmengine 0.10.7), and its Runner wants its own
dataset, transform and hook registries — the three tasks' data (the compositing field augmentation, the
weighted crop sampler, in-memory crop tensors) would have to be re-written for it. Lightning or Ignite would
add a large dependency and their own callback model for what is here one short loop that reads in one
sitting (and Lightning checkpoints of models with configuration objects hit the same ``weights_only`` limit);
accelerate does not cover schedules, checkpoint layout or best keeping. Torch (and the package's io) is
imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: Format of ``last.pt``; older files are refused with a clear message rather than half-loaded.
CHECKPOINT_FORMAT = 1

# ------------------------------------------------------------------------------------ seed and device


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (torch seeds CUDA too)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str = "auto"):
    """``"auto"`` → CUDA when available, else the CPU; any other name as torch spells it."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def bf16_helps(device) -> bool:
    """Whether bfloat16 autocast speeds training up on ``device``: on CUDA, and on CPUs with native bf16
    (elsewhere the CPU emulates it, slower than float32)."""
    from .semantic.inference import native_bfloat16

    return device.type == "cuda" or (device.type == "cpu" and native_bfloat16())


# -------------------------------------------------------------------------------------- schedules


def warmup_cosine(base_lr: float, total: int, warmup: int = 100) -> Callable[[float], float]:
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero at ``total``."""

    def lr(position: float) -> float:
        return base_lr * min(1.0, (position + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(position / total, 1.0)))

    return lr


def one_cycle(
    max_lr: float,
    total: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
) -> Callable[[float], dict]:
    """The one-cycle policy of ``torch.optim.lr_scheduler.OneCycleLR`` (cosine, two phases, cycled momentum —
    Adam's beta1), as a function of the position: the same numbers, but driven by the trainer's position so it
    follows a time budget too."""
    initial_lr = max_lr / div_factor
    phases = [
        (float(pct_start * total) - 1, initial_lr, max_lr, max_momentum, base_momentum),
        (total - 1, max_lr, initial_lr / final_div_factor, base_momentum, max_momentum),
    ]

    def anneal(start, end, pct):
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    def at(position: float) -> dict:
        start = 0.0
        for i, (end, lr0, lr1, m0, m1) in enumerate(phases):
            if position <= end or i == len(phases) - 1:
                pct = (position - start) / (end - start)
                return {"lr": anneal(lr0, lr1, pct), "momentum": anneal(m0, m1, pct)}
            start = end
        raise AssertionError("unreachable: the last phase always matches")

    return at


# ------------------------------------------------------------------------------------ checkpoints


def save_checkpoint(path, state: dict) -> None:
    """``torch.save`` through :func:`atomic_path`: the previous checkpoint stays until this one is complete."""
    import torch

    from .io._atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path) -> dict:
    """A checkpoint's state, loaded with ``weights_only=True`` (tensors, numbers, strings, lists, dicts only)."""
    import pickle

    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path} holds objects other than tensors, numbers and strings (written by an older version?); "
            "start a new run or choose another output folder"
        ) from err


def random_state(generators: dict) -> dict:
    """Every random state of the run as tensors, numbers, strings and lists (``weights_only``-loadable)."""
    import torch

    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": list(mt), "gauss": gauss},
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": pos, "has_gauss": has_gauss, "cached": cached},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "generators": {},
    }
    for name, generator in generators.items():
        if isinstance(generator, torch.Generator):
            state["generators"][name] = generator.get_state()
        elif isinstance(generator, np.random.Generator):
            state["generators"][name] = json.dumps(generator.bit_generator.state)
        elif isinstance(generator, torch.Tensor):
            state["generators"][name] = generator.detach().cpu().clone()
        else:
            raise TypeError(f"cannot checkpoint {name!r}: {type(generator).__name__}")
    return state


def set_random_state(state: dict, generators: dict) -> None:
    """Restore :func:`random_state`'s output; task generators (and carried tensors) are restored in place."""
    import torch

    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
    numpy = state["numpy"]
    keys = np.asarray(numpy["keys"], np.uint32)
    np.random.set_state((numpy["kind"], keys, numpy["pos"], numpy["has_gauss"], numpy["cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, generator in generators.items():
        saved = state["generators"][name]
        if isinstance(generator, torch.Generator):
            generator.set_state(saved.cpu())  # generator states are CPU byte tensors on every device
        elif isinstance(generator, np.random.Generator):
            generator.bit_generator.state = json.loads(saved)
        else:
            generator.copy_(saved)


# ------------------------------------------------------------------------------------------ loop


class Trainer:
    """Runs ``train_step`` until ``steps`` are done or ``max_minutes`` are spent, checkpointing and keeping the
    best weights on the way.

    ``schedule(position)`` returns the learning rate, or ``{"lr": ..., "momentum": ...}`` (momentum is Adam's
    beta1 where the optimizer has betas). ``generators``: the task's own random generators (torch or numpy)
    and tensors that must survive a resume; python's, numpy's and torch's global states are always kept.
    ``meta``: JSON-able facts of the run, stored in the checkpoint (``resume(check=...)`` sees them) and in
    the best weights' metadata. ``bf16``: autocast the step to bfloat16; ``None`` where it helps
    (:func:`bf16_helps`). ``describe(record, steps)`` formats the log line of ``{"step", "lr", "s_per_step",
    losses…}`` (every ``log_every`` steps and at the last).
    """

    def __init__(
        self,
        model,
        optimizer,
        *,
        steps: int,
        schedule: Callable[[float], float | dict],
        device,
        checkpoint=None,
        checkpoint_minutes: float = 3.0,
        max_minutes: float | None = None,
        bf16: bool | None = None,
        grad_clip: float | None = None,
        generators: dict | None = None,
        meta: dict | None = None,
        log: Callable[[str], None] = print,
        log_every: int = 50,
        describe: Callable[[dict, int], str] | None = None,
    ):
        self.model, self.optimizer, self.steps, self.schedule = model, optimizer, int(steps), schedule
        self.device = device
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_minutes, self.max_minutes = checkpoint_minutes, max_minutes
        self.bf16 = bf16_helps(device) if bf16 is None else bf16
        self.grad_clip, self.generators, self.meta = grad_clip, dict(generators or {}), dict(meta or {})
        self.log, self.log_every, self.describe = log, max(1, int(log_every)), describe or _default_line
        self.step, self.best_score, self.history = 0, -math.inf, []
        self._spent_before, self._session_start = 0.0, time.monotonic()

    # -- time and schedule

    def elapsed(self) -> float:
        """Seconds of training in this run, earlier sessions of a resumed run included."""
        return self._spent_before + time.monotonic() - self._session_start

    def time_up(self) -> bool:
        return self.max_minutes is not None and self.elapsed() >= 60.0 * self.max_minutes

    def position(self) -> float:
        """The schedule's position in steps: the steps done, or the time budget's share of all steps when
        that is further along."""
        if not self.max_minutes:
            return self.step
        return max(self.step, min(self.elapsed() / (60.0 * self.max_minutes), 1.0) * self.steps)

    def _apply_schedule(self) -> float:
        value = self.schedule(self.position())
        lr, momentum = (value["lr"], value.get("momentum")) if isinstance(value, dict) else (value, None)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
            if momentum is not None:
                if "betas" in group:
                    group["betas"] = (momentum, *group["betas"][1:])
                else:
                    group["momentum"] = momentum
        return lr

    # -- checkpoints

    def state_dict(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed(),
            "best": self.best_score,
            "random": random_state(self.generators),
            "meta": json.dumps(self.meta),
            "history": json.dumps(self.history[-2000:]),
        }

    def save(self) -> None:
        if self.checkpoint is not None:
            save_checkpoint(self.checkpoint, self.state_dict())

    def resume(self, check: Callable[[dict], None] | None = None) -> bool:
        """Continue from the checkpoint if there is one (``True``); ``check(saved_meta)`` may refuse it (raise)
        before anything is loaded, e.g. when the saved run had another total."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return False
        state = load_checkpoint(self.checkpoint)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"{self.checkpoint} is not a checkpoint of this trainer (written by an older version?); "
                "start a new run or choose another output folder"
            )
        if check is not None:
            check(json.loads(state["meta"]))
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.best_score = int(state["step"]), float(state["best"])
        self._spent_before, self._session_start = float(state["elapsed"]), time.monotonic()
        self.history = json.loads(state["history"])
        set_random_state(state["random"], self.generators)
        return True

    # -- the loop

    def run(
        self,
        train_step: Callable,
        *,
        validate: Callable | None = None,
        val_every: int | None = None,
        best=None,
        stop: Callable[[], bool] | None = None,
    ) -> Trainer:
        """Train from the current step.

        ``train_step(step)`` computes the loss of step ``step``'s batch (inside the autocast) and returns it,
        or ``(loss, {name: value})`` for the log; the trainer does the backward pass, gradient clipping and the
        optimizer step, and skips a step whose loss is not finite. ``validate()`` returns a score (higher is
        better) or ``(score, details)``; it runs every ``val_every`` steps and at the end, and a better score
        writes ``best`` (a ``.safetensors`` path). ``stop()`` is polled before each step.
        """
        import torch

        self.model.train()
        window, last_save, t0 = [], time.monotonic(), time.monotonic()
        while True:
            if self.step >= self.steps:
                break
            if self.time_up():
                self.log(f"time budget of {self.max_minutes} min reached at step {self.step}")
                break
            if stop is not None and stop():
                self.log(f"stop requested at step {self.step}")
                break
            lr = self._apply_schedule()
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                out = train_step(self.step)
            loss, values = out if isinstance(out, tuple) else (out, {})
            self.optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                self.log(f"step {self.step}: non-finite loss {float(loss)}, step skipped")
                self.step += 1
                continue
            loss.backward()
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(self.grad_clip))
            self.optimizer.step()
            self.step += 1
            window.append({"loss": float(loss.detach()), **{k: _number(v) for k, v in values.items()}})
            if self.step % self.log_every == 0 or self.step == self.steps:
                seconds = (time.monotonic() - t0) / len(window)
                mean = {k: float(np.mean([w[k] for w in window if k in w])) for k in window[-1]}
                record = {"step": self.step, "lr": lr, "s_per_step": seconds, **mean}
                self.history.append(record)
                self.log(self.describe(record, self.steps))
                window, t0 = [], time.monotonic()
            ending = self.step >= self.steps or self.time_up()
            if validate is not None and (ending or (val_every and self.step % val_every == 0)):
                self._validate(validate, best)
                self.model.train()
            if time.monotonic() - last_save >= 60.0 * self.checkpoint_minutes:
                self.save()
                last_save = time.monotonic()
        self.save()
        return self

    def _validate(self, validate: Callable, best) -> None:
        out = validate()
        score, details = out if isinstance(out, tuple) else (out, None)
        score = float(score)
        self.log(f"step {self.step} validation score {score:.4f}" + (f" {json.dumps(details)}" if details else ""))
        if score <= self.best_score:
            return
        self.best_score = score
        if best is not None:
            from .io._atomic import atomic_path
            from .registry import save_weights

            best = Path(best)
            meta = dict(self.meta, step=self.step, validation=details, validation_score=score)
            sha = save_weights(self.model.state_dict(), best, meta)
            with atomic_path(best.with_suffix(".json")) as tmp:
                tmp.write_text(json.dumps(dict(meta, sha256=sha), indent=2))
            self.log(f"new best {score:.4f} → {best}")


def _number(value) -> float:
    return float(value.detach()) if hasattr(value, "detach") else float(value)


def _default_line(record: dict, steps: int) -> str:
    return (
        f"step {record['step']}/{steps} loss {record['loss']:.4f} lr {record['lr']:.2e} "
        f"{record['s_per_step']:.2f} s/step"
    )
