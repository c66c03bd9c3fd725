"""The one trainer: exact resume, weights_only checkpoints, time budget, best keeping, atomic writes."""

from __future__ import annotations

import json
import random
import time

import numpy as np
import pytest
import torch

from napari_cervix.io._atomic import atomic_path
from napari_cervix.registry import METADATA_KEY
from napari_cervix.trainer import Trainer, load_checkpoint, one_cycle, seed_everything, warmup_cosine

STEPS = 12


def header(path) -> dict:
    """The metadata the trainer wrote (raw: a test run's metadata is no model card)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as fh:
        return json.loads(fh.metadata()[METADATA_KEY])


def tiny_run(tmp_path, steps=STEPS, **options):
    """A small MLP with dropout on data drawn from every kind of generator the trainer must carry: a task
    torch generator, a task numpy generator, and python's, numpy's and torch's global ones."""
    seed_everything(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    data_gen = torch.Generator().manual_seed(1)
    noise_rng = np.random.default_rng(2)
    weight = torch.tensor([1.0, -2.0, 0.5, 3.0])

    def train_step(step):
        x = torch.randn(8, 4, generator=data_gen)
        y = x @ weight + torch.from_numpy(noise_rng.normal(0, 0.1, 8)).float()
        y = y + float(np.random.normal(0, 0.01)) + random.gauss(0, 0.01)  # the global generators too
        return torch.nn.functional.mse_loss(model(x)[:, 0], y)

    trainer = Trainer(
        model,
        optimizer,
        steps=steps,
        schedule=warmup_cosine(1e-2, steps, warmup=3),
        device=torch.device("cpu"),
        checkpoint=tmp_path / "last.pt",
        generators={"data": data_gen, "noise": noise_rng},
        meta={"task": "test"},
        log=lambda line: None,
        **options,
    )
    return trainer, train_step


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    straight, step_fn = tiny_run(tmp_path / "straight")
    straight.run(step_fn)

    first, step_fn = tiny_run(tmp_path / "split")
    first.run(step_fn, stop=lambda: first.step >= STEPS // 2)
    assert first.step == STEPS // 2
    np.random.seed(123)  # a fresh process: the global generators must come back from the checkpoint
    random.seed(123)
    torch.manual_seed(123)
    second, step_fn = tiny_run(tmp_path / "split")
    assert second.resume() and second.step == STEPS // 2
    second.run(step_fn)
    assert second.step == STEPS
    for (name, a), b in zip(straight.model.state_dict().items(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert load_checkpoint(tmp_path / "split" / "last.pt")["step"] == STEPS


def test_checkpoint_loads_with_weights_only(tmp_path):
    trainer, step_fn = tiny_run(tmp_path)
    trainer.run(step_fn)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["step"] == STEPS and set(state["model"]) == set(trainer.model.state_dict())
    assert state["meta"] == '{"task": "test"}'


def test_resume_check_refuses_before_loading(tmp_path):
    trainer, step_fn = tiny_run(tmp_path)
    trainer.run(step_fn, stop=lambda: trainer.step >= 2)
    other, _ = tiny_run(tmp_path)

    def check(meta):
        raise ValueError(f"a {meta['task']} run")

    with pytest.raises(ValueError, match="a test run"):
        other.resume(check=check)
    assert other.step == 0


def test_old_checkpoint_is_refused_clearly(tmp_path):
    torch.save({"model": {}, "epoch": 3}, tmp_path / "last.pt")
    trainer, _ = tiny_run(tmp_path)
    with pytest.raises(ValueError, match="not a checkpoint of this trainer"):
        trainer.resume()


def test_max_minutes_stops_the_run_and_anneals(tmp_path):
    lines = []
    trainer, step_fn = tiny_run(tmp_path, steps=100_000, max_minutes=0.5 / 60)
    trainer.log = lines.append

    def slow_step(step):
        time.sleep(0.05)
        return step_fn(step)

    trainer.run(slow_step)
    assert 2 <= trainer.step < 100
    assert any("time budget" in line for line in lines)
    assert trainer.position() == trainer.steps  # the schedule reached its end with the budget
    assert load_checkpoint(tmp_path / "last.pt")["step"] == trainer.step


def test_best_weights_replaced_only_when_the_score_improves(tmp_path, monkeypatch):
    import napari_cervix.registry as registry

    writes = []
    save = registry.save_weights

    def counting_save(state, path, meta):
        writes.append(meta["validation_score"])
        return save(state, path, meta)

    monkeypatch.setattr(registry, "save_weights", counting_save)
    scores = iter([0.5, 0.3, 0.7, 0.6])
    trainer, step_fn = tiny_run(tmp_path, steps=4)
    best = tmp_path / "best.safetensors"
    trainer.run(step_fn, validate=lambda: (next(scores), {"dice": 0.1}), val_every=1, best=best)
    assert writes == [0.5, 0.7]
    meta = header(best)
    assert meta["step"] == 3 and meta["validation_score"] == 0.7 and meta["task"] == "test"
    assert (tmp_path / "best.json").exists()

    # The best score survives a resume: a worse one later does not overwrite the file.
    resumed, step_fn = tiny_run(tmp_path, steps=6)
    assert resumed.resume() and resumed.best_score == 0.7
    resumed.run(step_fn, validate=lambda: 0.65, val_every=1, best=best)
    assert writes == [0.5, 0.7] and header(best)["step"] == 3


def test_interrupted_write_keeps_the_good_file(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    target.write_bytes(b"good checkpoint")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a ")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"good checkpoint"
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind

    # The same through the trainer's checkpointing: torch.save dies half-way.
    trainer, step_fn = tiny_run(tmp_path)
    trainer.run(step_fn, stop=lambda: trainer.step >= 3)
    good = target.read_bytes()
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        with open(f, "r+b") as fh:
            fh.truncate(100)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        trainer.save()
    assert target.read_bytes() == good and load_checkpoint(target)["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_one_cycle_matches_torch(tmp_path):
    """The trainer's one-cycle policy gives OneCycleLR's learning rates and betas exactly."""
    total = 57
    params = [torch.nn.Parameter(torch.zeros(1))]
    reference = torch.optim.AdamW(params, lr=2e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(reference, max_lr=2e-3, total_steps=total, pct_start=0.15)
    schedule = one_cycle(2e-3, total, pct_start=0.15)
    for step in range(total):
        value = schedule(step)
        group = reference.param_groups[0]
        assert value["lr"] == group["lr"] and value["momentum"] == group["betas"][0], step
        reference.step()
        scheduler.step()
