"""The ship segmenter on a pretrained encoder (``detect.ships.effnet``): its shape and padding, its start from
ukis-csmask's weights, training at two rates, resuming, its spec and both runtimes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from detect.ships import effnet
from detect.ships.effnet import EffUNet, Encoder, same_pad
from detect.ships.segment import SEG_BANDS, SegModel, SegSpec, encode, seg_network
from detect.ships.segment_train import SegTrainConfig, optimiser, prepare, train
from imagery.errors import InputError, ModelError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
ENC = "efficientnet-b4"


def test_same_padding_is_tensorflows_at_efficientnets_input_size():
    assert same_pad(380, 3, 2) == (0, 1)  # the stem: one column and row after, none before
    assert same_pad(95, 5, 2) == (2, 2)
    assert same_pad(190, 3, 1) == (1, 1)
    assert same_pad(48, 3, 2) == (0, 1)


def test_the_network_keeps_the_input_size_and_only_the_stages_to_stride_16():
    torch.manual_seed(0)
    net = EffUNet(SEG_BANDS).eval()
    n = sum(p.numel() for p in net.parameters())
    assert 4.1e6 < n < 4.3e6  # the stride-32 stage (13.9 M of B4's 18.1 M) is not kept
    assert len(net.encoder._blocks) == 22 and net.encoder.channels == (48, 32, 56, 160)
    for h, w in [(96, 96), (112, 80), (64, 160)]:
        with torch.no_grad():
            assert net(torch.rand(2, 2 * len(SEG_BANDS), h, w)).shape == (2, 2, h, w)


def _scene(h: int = 64, w: int = 64, present=SEG_BANDS) -> np.ndarray:
    rng = np.random.default_rng(1)
    return encode(rng.uniform(0.0, 0.3, (len(SEG_BANDS), h, w)).astype(np.float32), present)


def test_at_the_start_only_the_four_pretrained_bands_reach_the_encoder_and_an_absent_one_is_its_mean():
    torch.manual_seed(0)
    net = EffUNet(SEG_BANDS).eval()
    x = torch.from_numpy(_scene())[None]
    with torch.no_grad():
        base = net(x)
        y = x.clone()
        y[:, SEG_BANDS.index("B11")] += 1.0  # B11 only reaches the added stem convolution, zero at the start
        assert torch.equal(net(y), base)
        y = x.clone()
        y[:, SEG_BANDS.index("B08")] += 1.0
        assert not torch.allclose(net(y), base)
        z = torch.from_numpy(_scene(present=("B02", "B03", "B04")))[None]
        w = z.clone()
        w[:, SEG_BANDS.index("B08")] = 2.0  # an absent band's value is never read
        assert torch.equal(net(z), net(w))
        net.extra.weight.data.fill_(0.01)  # once trained, every encoded channel counts
        y = x.clone()
        y[:, SEG_BANDS.index("B11")] += 1.0
        assert not torch.allclose(net(y), net(x))


def _fake_pretrained(monkeypatch) -> dict[str, torch.Tensor]:
    """ukis-csmask's encoder stood in for by seeded random weights (the package is an optional extra)."""
    torch.manual_seed(123)
    fake = {k: v.clone() for k, v in Encoder().state_dict().items() if not k.endswith("num_batches_tracked")}
    monkeypatch.setattr(effnet, "csmask_encoder", lambda want: {k: v.clone() for k, v in fake.items()})
    return fake


def test_training_starts_from_the_pretrained_encoder_and_trains_it_at_its_own_rate(tmp_path, monkeypatch):
    fake = _fake_pretrained(monkeypatch)
    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    frozen = SegTrainConfig(steps=2, batch=2, crop=32, encoder=ENC, encoder_lr=0.0, checkpoint_every=2)
    model = train(cache, cities, tmp_path / "frozen", frozen)
    enc = model.encoder.state_dict()
    weights = [k for k in fake if not k.split(".")[-1].startswith("running")]
    assert all(torch.equal(enc[k], fake[k]) for k in weights)  # rate 0: the encoder stays the pretrained one
    assert not torch.equal(model.extra.weight, torch.zeros_like(model.extra.weight))  # the rest learns
    moving_cfg = SegTrainConfig(**{**frozen.__dict__, "encoder_lr": 0.1})
    moving = train(cache, cities, tmp_path / "moving", moving_cfg)
    assert not all(torch.equal(moving.encoder.state_dict()[k], fake[k]) for k in weights)
    opt = optimiser(EffUNet(SEG_BANDS), SegTrainConfig(encoder=ENC, encoder_lr=0.25))
    assert [g["lr_scale"] for g in opt.param_groups] == [1.0, 0.25]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(EffUNet(SEG_BANDS).parameters()))


def test_a_pretrained_encoder_run_killed_midway_resumes_to_the_same_weights_and_keeps_its_rate(
    tmp_path, monkeypatch
):
    _fake_pretrained(monkeypatch)
    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    cfg = SegTrainConfig(steps=4, batch=2, crop=32, encoder=ENC, checkpoint_every=2)
    straight = train(cache, cities, tmp_path / "straight", cfg)

    def kill(message: str) -> None:
        raise RuntimeError(message)

    with pytest.raises(RuntimeError, match="step 2/4"):
        train(cache, cities, tmp_path / "resumed", cfg, progress=kill)
    monkeypatch.setattr(
        effnet, "csmask_encoder", lambda want: pytest.fail("a resumed run reloaded the start")
    )
    resumed = train(cache, cities, tmp_path / "resumed", cfg)
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    other = SegTrainConfig(**{**cfg.__dict__, "steps": 6, "cycle": 2, "encoder_lr": 0.5})
    with pytest.raises(InputError, match="encoder rate scales"):
        train(cache, cities, tmp_path / "resumed", other)
    with pytest.raises(InputError, match="--encoder"):  # a plain U-Net's options on this run
        train(cache, cities, tmp_path / "resumed", SegTrainConfig(**{**other.__dict__, "encoder": ""}))


def test_without_ukis_csmask_a_fresh_run_is_a_one_line_error_naming_the_extra(tmp_path, hide_module):
    hide_module("ukis_csmask")
    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    with pytest.raises(InputError, match=r'not installed \(pip install -e "\.\[pretrained\]"\)'):
        train(cache, cities, tmp_path / "run", SegTrainConfig(steps=1, batch=2, crop=32, encoder=ENC))


def test_ukis_csmask_encoder_loads_by_name_into_the_network():
    pytest.importorskip("ukis_csmask")
    pytest.importorskip("onnx")
    net = EffUNet(SEG_BANDS)
    assert effnet.pretrained_start(net) == len(
        [k for k in net.encoder.state_dict() if not k.endswith("num_batches_tracked")]
    )


def test_a_spec_names_its_encoder_and_loads_on_torch_and_onnxruntime_alike(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    torch.manual_seed(0)
    net = EffUNet(SEG_BANDS)
    with torch.no_grad():
        net.extra.weight.normal_(0, 0.05)
    torch.save(net.state_dict(), tmp_path / "m.pt")
    SegSpec(name="m", encoder=ENC).write(tmp_path / "m.json")
    assert SegSpec.read(tmp_path / "m.json").encoder == ENC
    x = _scene(80, 96)
    by_torch = SegModel.load(tmp_path / "m.pt", runtime="torch").probabilities(x)
    ort = SegModel.load(tmp_path / "m.pt", runtime="onnx")
    assert ort.runtime == "onnxruntime"
    assert np.abs(ort.probabilities(x) - by_torch).max() < 1e-4
    SegSpec(name="u").write(tmp_path / "u.json")  # a plain U-Net's spec reads as before encoders
    assert "encoder" not in (tmp_path / "u.json").read_text()
    with pytest.raises(ModelError, match="encoder 'resnet-9'"):
        SegSpec(name="x", encoder="resnet-9")
    with pytest.raises(ModelError, match="unknown segmentation encoder"):
        seg_network(encoder="resnet-9")
    SegSpec(name="m").write(tmp_path / "m.json")  # weights of one network under another's spec
    with pytest.raises(ModelError, match="cannot load segmentation weights"):
        SegModel.load(tmp_path / "m.pt", runtime="torch")


def test_the_new_decoder_starts_as_segmentation_models_pytorch_starts_it():
    torch.manual_seed(0)
    net = EffUNet(SEG_BANDS)
    conv = net.decoder.blocks[0].conv1[0]
    bound = (6.0 / (conv.in_channels * 9)) ** 0.5  # He-uniform, fan in, ReLU gain
    assert 0.9 * bound < conv.weight.abs().max().item() <= bound
    head = net.segmentation_head[0]
    assert torch.equal(head.bias, torch.zeros_like(head.bias))
    assert head.weight.abs().max().item() <= (6.0 / ((16 + 2) * 9)) ** 0.5  # Xavier-uniform


def test_network_options_that_do_not_go_together_are_refused_in_one_line(tmp_path):
    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    for cfg, why in [
        (SegTrainConfig(steps=1, crop=40, encoder=ENC), "multiple of 16"),
        (SegTrainConfig(steps=1, base=12, encoder=ENC), "own shape"),
        (SegTrainConfig(steps=1, encoder_lr=0.2), "add --encoder"),
    ]:
        with pytest.raises(InputError, match=why):
            train(cache, cities, tmp_path / "run", cfg)
    assert not (tmp_path / "run").exists()  # refused before any work


def test_a_network_is_rebuilt_from_its_weights_alone():
    from detect.ships.segment import UNet, network_for

    for net in (UNet(base=12, depth=3), EffUNet(SEG_BANDS)):
        state = net.state_dict()
        again = network_for(state)
        assert type(again) is type(net)
        again.load_state_dict(state)  # strict: every tensor of the same shape
    with pytest.raises(ModelError, match="not the weights"):
        network_for({"x": torch.zeros(1)})


def test_batch_norm_is_re_estimated_without_stochastic_depth_and_repeats(tmp_path):
    from detect.ships.segment_train import TrainingScenes, recalibrate_bn

    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    scenes = TrainingScenes(cache, cities)
    cfg = SegTrainConfig(batch=2, crop=32, encoder=ENC)
    stats = []
    for seed in (1, 2):  # the global random state differs; stochastic depth would draw from it
        torch.manual_seed(0)
        net = EffUNet(SEG_BANDS)
        torch.manual_seed(seed)
        recalibrate_bn(net, scenes, cfg, batches=2)
        assert not net.training
        stats.append({k: v.clone() for k, v in net.state_dict().items() if "running" in k})
    assert all(torch.equal(v, stats[1][k]) for k, v in stats[0].items())


def test_the_probes_network_and_this_one_compute_the_same_and_its_runs_carry_over(
    tmp_path, load_script, monkeypatch
):
    """benchmarks/seg_pretrained_probe.py (segmentation_models_pytorch, an optional extra) against EffUNet."""
    pytest.importorskip("segmentation_models_pytorch")
    pytest.importorskip("ukis_csmask")
    import detect.ships.segment as seg
    import detect.ships.segment_train as st

    probe = load_script("benchmarks/seg_pretrained_probe.py")
    torch.manual_seed(0)
    smp_net = probe.PretrainedSeg(4, pretrained=False)
    with torch.no_grad():
        smp_net.extra.weight.normal_(0, 0.05)
    ours = EffUNet(SEG_BANDS)
    ours.load_state_dict(effnet.from_smp_state(smp_net.state_dict()))
    x = torch.from_numpy(np.stack([_scene(64, 96), _scene(64, 96, ("B08",))]))
    for mode in ("eval", "train"):
        getattr(smp_net, mode)()
        getattr(ours, mode)()
        torch.manual_seed(3)
        a = smp_net(x)
        torch.manual_seed(3)
        b = ours(x)  # stochastic depth draws the same masks for the blocks both run, in the same order
        assert torch.equal(a, b), mode
    # a probe checkpoint, optimiser included, becomes a run train() continues
    for owner, name in ((torch.optim, "AdamW"), (seg, "UNet"), (st, "UNet")):  # install() patches these
        monkeypatch.setattr(owner, name, getattr(owner, name, None), raising=False)
    probe.install(4, 0.1, pretrained=False)
    opt = torch.optim.AdamW([{"params": list(smp_net.parameters())}], lr=1e-3)  # probe's ScaledAdamW
    smp_net(x).mean().backward()
    opt.step()
    run = tmp_path / "probe" / "fold0"
    run.mkdir(parents=True)
    torch.save({"model": smp_net.state_dict(), "opt": opt.state_dict(), "step": 1}, run / "checkpoint.pt")
    monkeypatch.undo()  # this process's AdamW and UNet back
    assert probe.main(["export", "--run", str(tmp_path / "probe"), "--out", str(tmp_path / "cli")]) == 0
    st = torch.load(tmp_path / "cli" / "fold0" / "checkpoint.pt", weights_only=False)
    ours.load_state_dict(st["model"])
    mine = optimiser(ours, SegTrainConfig(encoder=ENC))
    mine.load_state_dict(st["opt"])
    assert [g["lr_scale"] for g in mine.param_groups] == [1.0, 0.1]
    named = dict(smp_net.named_parameters())
    for name, q in ours.named_parameters():  # each parameter got its own Adam moments back
        assert torch.equal(
            mine.state[q]["exp_avg"],
            opt.state[named[f"net.{name}"] if f"net.{name}" in named else named[name]]["exp_avg"],
        ), name
