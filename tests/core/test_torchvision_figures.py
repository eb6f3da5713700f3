"""Parameter and MAC counts of every torchvision CNN classifier against its published figures.

torchvision publishes, per weights entry, ``meta["num_params"]`` and ``meta["_ops"]`` (GMACs at
the weights' evaluation resolution, ``transforms().crop_size``). Our convention (ops.py):
convolution (C_in/groups)*K_h*K_w*C_out*H_out*W_out, transposed convolution
C_in*(C_out/groups)*K_h*K_w*H_in*W_in, linear in*out*positions, nothing else. Models are built on
the meta device: no weights are downloaded, no memory is used.
"""

from __future__ import annotations

import pytest
import torchvision

from cnnviz.core import trace
from cnnviz.core.analysis import analyse

CNN_CLASSIFIERS = [
    "alexnet",
    "convnext_tiny",
    "convnext_small",
    "convnext_base",
    "convnext_large",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "efficientnet_v2_s",
    "efficientnet_v2_m",
    "efficientnet_v2_l",
    "googlenet",
    "inception_v3",
    "mnasnet0_5",
    "mnasnet0_75",
    "mnasnet1_0",
    "mnasnet1_3",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "regnet_x_400mf",
    "regnet_x_800mf",
    "regnet_x_1_6gf",
    "regnet_x_3_2gf",
    "regnet_x_8gf",
    "regnet_x_16gf",
    "regnet_x_32gf",
    "regnet_y_400mf",
    "regnet_y_800mf",
    "regnet_y_1_6gf",
    "regnet_y_3_2gf",
    "regnet_y_8gf",
    "regnet_y_16gf",
    "regnet_y_32gf",
    "regnet_y_128gf",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5",
    "shufflenet_v2_x2_0",
    "squeezenet1_0",
    "squeezenet1_1",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "wide_resnet50_2",
    "wide_resnet101_2",
]
NOT_CNNS = ("vit_", "swin_", "maxvit_")


def test_the_list_covers_every_torchvision_cnn_classifier():
    available = set(torchvision.models.list_models(module=torchvision.models))
    cnns = {n for n in available if not n.startswith(NOT_CNNS)}
    assert cnns == set(CNN_CLASSIFIERS)


@pytest.mark.parametrize("name", CNN_CLASSIFIERS)
def test_published_params_and_macs(name):
    weights = list(torchvision.models.get_model_weights(name))
    # googlenet's published figures are without the auxiliary heads (its weights drop them);
    # inception_v3's num_params includes AuxLogits, which only runs in training: build it
    # with the head so that we can count what the eval graph leaves out.
    kwargs = {"aux_logits": True} if name == "inception_v3" else {}
    model = trace.build_torchvision(name, **kwargs).eval()
    by_crop: dict[int, list] = {}
    for w in weights:
        by_crop.setdefault(w.transforms().crop_size[0], []).append(w)
    for crop, ws in by_crop.items():
        graph = trace.from_module(model, (3, crop, crop), name=name)
        assert graph.validate() == []
        a = analyse(graph)
        assert a.ok, a.errors[:3]
        params = a.total_params
        if name == "inception_v3":
            aux = sum(p.numel() for p in model.AuxLogits.parameters())
            assert aux == 3_326_696
            assert f"{aux:,} parameters belong to modules the forward pass does not call" in (
                " ".join(graph.notes)
            )
            params += aux
        for w in ws:
            assert params == w.meta["num_params"], (w, params)
            assert round(a.macs / 1e9, 3) == w.meta["_ops"], (w, a.macs)
