"""The training core: configuration, the report generator, control flags, failures, checkpoints."""

from __future__ import annotations

import copy
import csv
import dataclasses
import math
import threading
import time

import pytest
import torch
from torch import nn
from torch.utils.data import Subset

from cnnviz.core import zoo
from cnnviz.core.data import DatasetBundle, load_dataset
from cnnviz.core.training import (
    Report,
    TrainConfig,
    TrainConfigError,
    TrainControl,
    configure_main_thread,
    configure_worker_thread,
    load_checkpoint,
    metrics_to_csv,
    save_checkpoint,
    train,
)
from cnnviz.errors import CnnvizError

FAST = {"device": "cpu", "num_threads": 1}


@pytest.fixture(scope="module")
def shapes() -> DatasetBundle:
    return load_dataset("shapes", train_size=900, val_fraction=1 / 3, seed=0)


def lenet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return zoo.build("lenet5")[0]


def run(model: nn.Module, data: DatasetBundle, **settings) -> list[Report]:
    config = TrainConfig(**{**FAST, **settings})
    return list(train(model, data, config))


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("lr", 0.0, "> 0"),
        ("lr", -1e-3, "> 0"),
        ("lr", math.nan, "> 0"),
        ("batch_size", 0, ">= 1"),
        ("batch_size", 2.5, ">= 1"),
        ("epochs", 0, ">= 1"),
        ("momentum", 1.0, "[0, 1)"),
        ("momentum", -0.1, "[0, 1)"),
        ("weight_decay", -1e-4, ">= 0"),
        ("optimizer", "rmsprop", "'sgd'"),
        ("schedule", "linear", "'one-cycle'"),
        ("init", "orthogonal", "'xavier'"),
        ("device", "tpu", "'mps'"),
        ("gamma", 0.0, "(0, 1]"),
        ("step_size", 0, ">= 1"),
        ("aux_weight", -0.3, ">= 0"),
        ("report_every_n_steps", 0, ">= 1"),
    ],
)
def test_invalid_settings_name_the_field_and_the_range(field, value, allowed) -> None:
    with pytest.raises(TrainConfigError) as info:
        TrainConfig(**{field: value})
    message = str(info.value)
    assert message.startswith(field + " ")
    assert allowed in message
    assert isinstance(info.value, CnnvizError)


def test_nesterov_needs_sgd_with_momentum() -> None:
    TrainConfig(optimizer="sgd", momentum=0.9, nesterov=True)
    with pytest.raises(TrainConfigError, match="nesterov"):
        TrainConfig(optimizer="adam", nesterov=True)
    with pytest.raises(TrainConfigError, match="nesterov"):
        TrainConfig(optimizer="sgd", momentum=0.0, nesterov=True)


def test_config_round_trips_through_a_plain_dict() -> None:
    config = TrainConfig(optimizer="sgd", lr=0.05, schedule="one-cycle", seed=7)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(TrainConfigError, match="colour"):
        TrainConfig.from_dict({"colour": "red"})


# --------------------------------------------------------------------------- the loop


def test_a_few_steps_reduce_the_loss(shapes) -> None:
    model = lenet()
    reports = run(model, shapes, lr=2e-3, batch_size=16, epochs=3, report_every_n_steps=3)
    kinds = [r.kind for r in reports]
    assert kinds[-1] == "finished"
    assert kinds.count("epoch") == 3
    epochs = [r for r in reports if r.kind == "epoch"]
    assert epochs[0].steps_per_epoch == 600 // 16
    assert epochs[-1].global_step == 3 * (600 // 16)
    assert reports[0].train_loss > epochs[-1].train_loss
    assert epochs[-1].val_loss < math.log(10) - 0.2
    assert epochs[-1].val_accuracy > 0.15  # chance: 0.1
    for report in reports:
        assert all(
            isinstance(getattr(report, f.name), (int, float, str, type(None)))
            for f in dataclasses.fields(report)
        )
    assert reports[-1].eta_s == 0.0
    assert all(r.images_per_s > 0 for r in reports if r.kind == "step")


def test_schedules_move_the_learning_rate(shapes) -> None:
    common = {"lr": 0.1, "optimizer": "sgd", "epochs": 2, "report_every_n_steps": 1}
    common["max_steps_per_epoch"] = 4
    step = run(lenet(), shapes, schedule="step", step_size=1, gamma=0.5, **common)
    lrs = [r.lr for r in step if r.kind == "step"]
    assert lrs == pytest.approx([0.1] * 4 + [0.05] * 4)
    cosine = [r.lr for r in run(lenet(), shapes, schedule="cosine", **common) if r.kind == "step"]
    assert cosine[0] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(cosine, cosine[1:], strict=False))
    cycle = [r.lr for r in run(lenet(), shapes, schedule="one-cycle", **common) if r.kind == "step"]
    peak = max(range(len(cycle)), key=cycle.__getitem__)
    assert 0 < peak < len(cycle) - 1 and cycle[0] < 0.1 and cycle[-1] < cycle[peak]


def test_same_seed_same_curve_other_seed_other_curve(shapes) -> None:
    settings = {"lr": 3e-3, "report_every_n_steps": 1, "max_steps_per_epoch": 6, "epochs": 2}

    def losses(seed: int) -> list[float]:
        # The model is built from a different torch seed each time: the config's seed (and
        # init) must be what decides.
        model = lenet(seed=seed * 100 + 1)
        return [r.batch_loss for r in run(model, shapes, seed=seed, init="he", **settings)]

    first, again, other = losses(1), losses(1), losses(2)
    assert first == again
    assert first != other


def test_pause_blocks_resume_continues_and_stop_ends_within_a_batch(shapes) -> None:
    batches = 0

    class Counting(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = lenet()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            nonlocal batches
            if self.training:
                batches += 1
                time.sleep(0.005)  # keep batches slow enough to observe from outside
            return self.inner(x)

    control = TrainControl()
    reports: list[Report] = []
    config = TrainConfig(epochs=50, batch_size=16, report_every_n_steps=1000, **FAST)
    worker = threading.Thread(
        target=lambda: reports.extend(train(Counting(), shapes, config, control))
    )
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while batches < 5 and time.monotonic() < deadline:
            time.sleep(0.005)
        control.pause()
        at_pause = batches
        time.sleep(0.3)
        assert control.paused
        assert batches - at_pause <= 1, "a paused run went on training"
        paused_count = batches
        time.sleep(0.2)
        assert batches == paused_count
        control.resume()
        while batches < paused_count + 5 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert batches >= paused_count + 5, "training did not resume"
        control.stop()
        at_stop = batches
    finally:
        control.stop()
        worker.join(timeout=20)
    assert not worker.is_alive()
    assert batches - at_stop <= 1
    assert reports[-1].kind == "stopped"
    assert reports[-1].global_step == batches


def test_stop_while_paused_ends_the_run(shapes) -> None:
    control = TrainControl()
    control.pause()
    reports: list[Report] = []
    config = TrainConfig(epochs=1, **FAST)
    worker = threading.Thread(
        target=lambda: reports.extend(train(lenet(), shapes, config, control))
    )
    worker.start()
    time.sleep(0.2)
    control.stop()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert [r.kind for r in reports] == ["stopped"]
    assert reports[0].global_step == 0


def test_stop_during_validation_ends_the_run(shapes) -> None:
    control = TrainControl()

    class StopInValidation(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = lenet()
            self.eval_batches = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.training:
                self.eval_batches += 1
                control.stop()  # as if the user pressed Stop during validation
            return self.inner(x)

    model = StopInValidation()
    config = TrainConfig(epochs=2, max_steps_per_epoch=2, **FAST)
    reports = list(train(model, shapes, config, control))
    assert [r.kind for r in reports] == ["stopped"]
    assert reports[0].global_step == 2
    assert model.eval_batches == 1  # the validation split (300 images) has two batches of 256


def test_nan_loss_fails_and_restores_the_last_good_weights(shapes) -> None:
    settings = {"optimizer": "sgd", "lr": 1e6, "momentum": 0.0, "seed": 3}
    model = lenet()
    reports = run(model, shapes, report_every_n_steps=1, epochs=3, **settings)
    failed = reports[-1]
    assert failed.kind == "failed"
    assert not math.isfinite(failed.batch_loss)
    assert f"epoch {failed.epoch}, step {failed.step}" in failed.message
    assert "learning rate 1e+06" in failed.message and "smaller learning rate" in failed.message
    state = model.state_dict()
    assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())
    # The last good weights are those after global_step - 2 updates: the weights that the
    # failing step used (after global_step - 1 updates) gave the non-finite loss.
    good_steps = failed.global_step - 2
    reference = lenet()
    if good_steps > 0:
        again = run(reference, shapes, epochs=1, max_steps_per_epoch=good_steps, **settings)
        assert again[-1].kind == "finished"
    for key, value in reference.state_dict().items():
        assert torch.equal(value, state[key]), key
    # The restored weights are usable: a forward pass gives finite logits.
    model.eval()
    assert torch.isfinite(model(torch.zeros(2, 1, 28, 28))).all()


def test_zero_init_learns_nothing(shapes) -> None:
    model = lenet()
    reports = run(model, shapes, init="zeros", optimizer="sgd", lr=0.05, epochs=2, seed=0)
    final = [r for r in reports if r.kind == "epoch"][-1]
    # Every unit of a layer computes the same value and gets the same gradient, and with
    # all-zero weights the only gradient is the last bias's: the loss stays at ln(10).
    assert final.val_loss == pytest.approx(math.log(10), abs=0.02)
    assert final.train_loss == pytest.approx(math.log(10), abs=0.02)
    assert final.val_accuracy < 0.2
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(float(m.weight.detach().abs().max()) == 0.0 for m in convs)


def test_googlenet_aux_losses_count_in_training_only() -> None:
    data = load_dataset("shapes32", train_size=200, val_fraction=0.2, seed=0)
    data = dataclasses.replace(data, train=Subset(data.train, range(8)))
    torch.manual_seed(0)
    model, _ = zoo.build("googlenet")
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0  # dropout masks depend on the order of samples; the check cannot
    before = copy.deepcopy(model)
    weight = 0.4
    reports = run(model, data, batch_size=8, aux_weight=weight, report_every_n_steps=1, lr=1e-3)
    first = reports[0]
    assert first.kind == "step" and first.global_step == 1

    images, labels = data.train.dataset.batch(list(range(8)))
    before.train()
    logits, aux2, aux1 = before(images)
    ce = nn.functional.cross_entropy
    expected = ce(logits, labels) + weight * (ce(aux1, labels) + ce(aux2, labels))
    assert first.batch_loss == pytest.approx(expected.item(), rel=1e-4)
    assert ce(logits, labels).item() < first.batch_loss * 0.8  # the aux part matters

    epoch = next(r for r in reports if r.kind == "epoch")
    model.eval()
    with torch.no_grad():
        val_x, val_y = data.val.batch(list(range(len(data.val))))
        out = model(val_x)
    assert isinstance(out, torch.Tensor)  # eval mode: main logits only
    assert epoch.val_loss == pytest.approx(float(ce(out, val_y)), rel=1e-4)


def test_out_of_memory_gives_a_failed_report_suggesting_a_smaller_batch(shapes) -> None:
    class Hungry(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = lenet()
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return self.inner(x)

    model = Hungry()
    reports = run(model, shapes, batch_size=64, report_every_n_steps=1)
    assert [r.kind for r in reports] == ["step", "step", "failed"]
    assert "out of memory" in reports[-1].message
    assert "smaller batch size, such as 32" in reports[-1].message
    model.eval()
    assert torch.isfinite(model(torch.zeros(1, 1, 28, 28))).all()


def test_a_model_error_is_a_failed_report(shapes) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(10, 10))  # wrong input size
    reports = run(model, shapes)
    assert reports[-1].kind == "failed"
    assert "step 1" in reports[-1].message and "(64, 1, 28, 28)" in reports[-1].message


def test_training_thread_gets_torch_default_threads_after_configure_main_thread(shapes) -> None:
    import cnnviz.core.training as training

    seen: list[int] = []

    class Recording(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = lenet()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch.get_num_threads())
            return self.inner(x)

    def gui() -> None:
        # Stands in for the GUI thread: single-threaded torch, then a training thread.
        configure_main_thread()
        seen.append(torch.get_num_threads())
        config = TrainConfig(device="cpu", max_steps_per_epoch=2)
        worker = threading.Thread(target=lambda: list(train(Recording(), shapes, config)))
        worker.start()
        worker.join()
        seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    try:
        thread = threading.Thread(target=gui)
        thread.start()
        thread.join()
    finally:
        torch.set_num_threads(before)
    assert seen[0] == 1 and seen[-1] == 1
    assert set(seen[1:-1]) == {training._DEFAULT_THREADS}


def test_worker_thread_gets_its_thread_count() -> None:
    got = []
    before = torch.get_num_threads()
    worker = threading.Thread(target=lambda: got.append(configure_worker_thread(1)))
    worker.start()
    worker.join()
    torch.set_num_threads(before)
    assert got == [1]


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(tmp_path, shapes) -> None:
    model = lenet(seed=1)
    config = TrainConfig(epochs=1, max_steps_per_epoch=3, checkpoint_path=str(tmp_path / "a.pt"))
    reports = list(train(model, shapes, dataclasses.replace(config, **FAST)))
    path = tmp_path / "a.pt"
    assert path.exists()
    # Only plain data inside: torch's safe loader reads it.
    raw = torch.load(path, weights_only=True)
    assert raw["config"]["checkpoint_path"] == str(path)
    assert raw["epoch"] == 1
    assert raw["metrics"]["val_accuracy"] == pytest.approx(reports[-1].val_accuracy)

    fresh = lenet(seed=2)
    optimizer = torch.optim.Adam(fresh.parameters())
    info = load_checkpoint(path, fresh, optimizer)
    assert info["epoch"] == 1 and TrainConfig.from_dict(info["config"]).max_steps_per_epoch == 3
    for key, value in model.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key]), key
    assert optimizer.state_dict()["state"], "the optimizer state was not loaded"
    x = torch.randn(4, 1, 28, 28)
    model.eval()
    fresh.eval()
    assert torch.equal(model(x), fresh(x))


def test_broken_or_mismatched_checkpoints_name_the_file_and_layer(tmp_path) -> None:
    model = lenet()
    good = save_checkpoint(tmp_path / "good.pt", model, None, TrainConfig(), epoch=3)
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CnnvizError, match="corrupt.pt"):
        load_checkpoint(corrupt, model)

    with pytest.raises(CnnvizError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt", model)

    other, _ = zoo.build("lenet5", num_classes=4)
    with pytest.raises(CnnvizError) as info:
        load_checkpoint(good, other)
    message = str(info.value)
    assert "good.pt" in message
    last = [k for k, v in model.state_dict().items() if v.ndim == 2][-1]
    assert f"shape of {last}: (10, 84) in the file, (4, 84) in the model" in message

    resnet, _ = zoo.build("resnet20")
    resnet_state = {k: v.clone() for k, v in resnet.state_dict().items()}
    with pytest.raises(CnnvizError, match="missing .*unexpected"):
        load_checkpoint(good, resnet)
    for key, value in resnet.state_dict().items():
        assert torch.equal(value, resnet_state[key])  # untouched
    for key, value in model.state_dict().items():
        assert torch.equal(value, snapshot[key])


def test_atomic_save_leaves_no_temp_files_and_survives_a_failed_write(tmp_path, monkeypatch):
    model = lenet()
    path = save_checkpoint(tmp_path / "ck.pt", model, None, None, epoch=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]
    original = path.read_bytes()

    def broken_save(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CnnvizError, match=r"ck\.pt.*disk full"):
        save_checkpoint(path, lenet(seed=5), None, None, epoch=2)
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]
    monkeypatch.undo()
    assert load_checkpoint(path, lenet(seed=6))["epoch"] == 1


# --------------------------------------------------------------------------- export


def test_metrics_csv_has_a_header_and_a_row_per_report(tmp_path, shapes) -> None:
    reports = run(lenet(), shapes, epochs=1, max_steps_per_epoch=4, report_every_n_steps=2)
    path = metrics_to_csv(reports, tmp_path / "metrics.csv")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header = [f.name for f in dataclasses.fields(Report)]
    assert rows[0] == header
    assert len(rows) == 1 + len(reports)
    assert [row[0] for row in rows[1:]] == [r.kind for r in reports]
    column = header.index("val_accuracy")
    assert rows[1][column] == ""  # step report: no validation
    assert float(rows[-1][column]) == pytest.approx(reports[-1].val_accuracy)
