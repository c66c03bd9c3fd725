"""bioimage.io model packages (spec 0.5) of the semantic U-Nets, for QuPath, deepImageJ, ilastik and bioimageio.core.

:func:`export_bioimageio` writes ``NAME.zip``: the network as a PyTorch state dict with its architecture
(segmentation-models-pytorch for the U-Net family, the network's own source file for the others) and as
TorchScript where one holds at every input size (:func:`_torchscript`),
input and output axes (batch, channel, y, x), the card's normalization as the spec's own preprocessing ops,
softmax as postprocessing, a README with the validation figures, and test tensors computed by
:func:`~napari_cervix.semantic.inference.segment_semantic` on a generated smear. bioimageio.core's own test
(:func:`check_package`) then runs the package on the test input and compares with that output, which is what
proves the preprocessing written here maps images as the plugin does.

Needs the ``bioimageio`` extra (bioimageio.core, which brings bioimageio.spec).
"""

from __future__ import annotations

import inspect
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from ..io._atomic import atomic_path
from ..kinds.unet import UNet
from ..registry import load_registry
from ..semantic.inference import SemanticModel, load_semantic_model, segment_semantic
from ..synth import generate_smear
from ..tiling import EDGE_MARGIN

AUTHORS = "napari-cervix contributors"
LICENSE = "BSD-3-Clause"
#: Both normalizers of the plugin (imaging.PercentileNormalizer, semantic.data.ChannelPercentileNormalizer)
#: clip the percentile-scaled image to this range; the package's test tensors check the two agree.
CLIP_RANGE = (0.0, 1.5)
#: Half the plugin's tile overlap (64 px): predictions this close to a tile's edge lack context.
HALO = 32
INPUT_ID, OUTPUT_ID = "raw", "probabilities"
CHANNEL_NAMES = {1: ["gray"], 3: ["red", "green", "blue"]}

#: (text, doi or url) of the architecture papers, by kind name prefix; every package also cites DATA_CITATIONS.
ARCHITECTURE_CITATIONS = {
    "unet-": [
        (
            "Wubineh, Rusiecki, Halawa. Segmentation of Cytology Images to Detect Cervical Cancer Using Deep "
            "Learning Techniques. ICCS 2024, LNCS (paper 001: U-Net with pretrained-network encoders).",
            "10.1007/978-3-031-63772-8_25",
        ),
        (
            "Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for Biomedical Image Segmentation. MICCAI 2015.",
            "10.1007/978-3-319-24574-4_28",
        ),
        ("Iakubovskii. Segmentation Models PyTorch.", "https://github.com/qubvel-org/segmentation_models.pytorch"),
    ],
    "residual-se-unet": [
        (
            "Chowdary, Suganya, Premalatha, Yogarajah. Nucleus segmentation and classification using residual SE-UNet "
            "and feature concatenation approach in cervical cytopathology cell images. Technology in Cancer "
            "Research & Treatment 2023 (paper 004).",
            "10.1177/15330338221134833",
        )
    ],
    "2se-unet": [
        (
            "Zhao, Gao, Li, Shi, Huang, Ma. Detection of precancerous lesions in cervical images of perimenopausal "
            "women using U-net deep learning. African Journal of Reproductive Health 2025 (paper 000).",
            "10.29063/ajrh2025/v29i4.10",
        )
    ],
}
DATA_CITATIONS = {
    "isbi2014": (
        "Lu, Carneiro, Bradley. An Improved Joint Optimization of Multiple Level Set Functions for the Segmentation "
        "of Overlapping Cervical Cells. IEEE TIP 24(4), 2015 (ISBI 2014 challenge data).",
        "10.1109/TIP.2015.2389619",
    ),
    "cric": (
        "Rezende et al. Cric searchable image database as a public platform for conventional pap smear cytology "
        "data. Scientific Data 8, 151 (2021).",
        "10.1038/s41597-021-00933-8",
    ),
}


class ExportError(ValueError):
    """A model that cannot be written as a bioimage.io package; the message says why."""


@dataclass(frozen=True)
class PackageTensors:
    """A generated smear as the package's test input (1 × C × H × W float32, raw intensities) and the plugin's
    class probabilities of it (1 × classes × H × W)."""

    input: np.ndarray
    output: np.ndarray


def make_test_tensors(loaded: SemanticModel, size: int = 256, seed: int = 0) -> PackageTensors:
    """Our own inference (float32, no TTA, one tile, no edge margin: a package runs the network on the image
    as it is) on a generated ``size``² smear of the model's color."""
    if size % loaded.card.divisor:
        raise ExportError(f"test image size {size} must be a multiple of the model's divisor {loaded.card.divisor}")
    image = generate_smear((size, size), seed=seed, rgb=loaded.card.input.channels == 3).image
    _, probabilities = segment_semantic(
        image, loaded, tile_size=size, overlap=0, return_probabilities=True, precision="float32", edge_margin=0
    )
    planes = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    return PackageTensors(planes[None].astype(np.float32), probabilities[None].astype(np.float32))


def preprocessing(card) -> list:
    """The card's normalization as spec ops: per-sample, per-channel percentiles → 0/1, then clipped.

    ``percentile`` (gray models) takes the luminance's percentiles; the package's input is that one gray
    channel, so the same scale_range over (y, x) applies. ``channel-percentile`` is scale_range per channel.
    """
    from bioimageio.spec.model.v0_5 import AxisId, ClipDescr, ClipKwargs, ScaleRangeDescr, ScaleRangeKwargs

    spec = dict(card.input.normalization)
    kind = spec.pop("kind")
    if kind not in ("percentile", "channel-percentile"):
        raise ExportError(f"{card.source}: no bioimage.io preprocessing matches normalization {kind!r}")
    scale = ScaleRangeKwargs(
        axes=[AxisId("y"), AxisId("x")], min_percentile=float(spec["low"]), max_percentile=float(spec["high"])
    )
    return [
        ScaleRangeDescr(kwargs=scale),
        ClipDescr(kwargs=ClipKwargs(min=CLIP_RANGE[0], max=CLIP_RANGE[1])),
    ]


def _architecture(loaded: SemanticModel, folder: Path):
    """Where the state dict's network comes from: the segmentation-models-pytorch class for the U-Net family,
    else the network's own source file (it imports only torch), copied into the package."""
    from bioimageio.spec.model.v0_5 import ArchitectureFromFileDescr, ArchitectureFromLibraryDescr, Identifier

    card = loaded.card
    shape = {"in_channels": card.input.channels, "classes": len(card.classes)}
    if isinstance(loaded.kind, UNet):
        kwargs = {"encoder_name": loaded.kind.encoder, "encoder_weights": None, **shape, **card.options}
        return ArchitectureFromLibraryDescr(
            import_from="segmentation_models_pytorch", callable=Identifier("Unet"), kwargs=kwargs
        )
    network_class = type(loaded.network)
    source = folder / Path(inspect.getsourcefile(network_class)).name
    shutil.copyfile(inspect.getsourcefile(network_class), source)
    return ArchitectureFromFileDescr(
        source=source, callable=Identifier(network_class.__name__), kwargs={**shape, **card.options}
    )


def _torchscript(network, example: np.ndarray):
    """A TorchScript module of ``network`` that gives its output at any input size, or None.

    Scripting keeps the size logic; tracing (for networks that do not script) is kept only if it also
    reproduces the network at a second, different size. 2se-unet does neither (max-unpooling to the skip's
    size), so its package has the state dict alone.
    """
    import torch

    x = torch.from_numpy(example)
    other = torch.rand(*x.shape[:2], x.shape[2] + 32, x.shape[3] + 64)
    with torch.inference_mode():
        expected = network(other)
        for make in (torch.jit.script, lambda net: torch.jit.trace(net, x, check_trace=False)):
            try:
                module = make(network)
                if torch.allclose(module(other), expected, atol=1e-5):
                    return module
            except (RuntimeError, TypeError, ValueError):  # what torch.jit raises on code it cannot compile
                continue
    return None


def _weights(loaded: SemanticModel, folder: Path, example: np.ndarray):
    """State dict (+ TorchScript where :func:`_torchscript` gives one) of a freshly loaded float32 copy: the
    cached network the plugin runs may be in channels-last memory format."""
    import torch
    from bioimageio.spec.model.v0_5 import (
        FileDescr,
        PytorchStateDictWeightsDescr,
        TorchscriptWeightsDescr,
        Version,
        WeightsDescr,
    )

    network = loaded.kind.load(loaded.path, loaded.card).float().eval()
    state_file = folder / "weights.pt"
    torch.save(network.state_dict(), state_file)
    version = Version(torch.__version__.split("+")[0])
    environment = folder / "environment.yaml"
    packages = ["torch", *(["segmentation-models-pytorch"] if isinstance(loaded.kind, UNet) else [])]
    pip_lines = "".join(f"      - {name}\n" for name in packages)
    environment.write_text(
        f"name: napari-cervix-{loaded.card.name or 'model'}\nchannels: [conda-forge]\n"
        f"dependencies:\n  - python>=3.10\n  - pip\n  - pip:\n{pip_lines}"
    )
    state = PytorchStateDictWeightsDescr(
        source=state_file,
        architecture=_architecture(loaded, folder),
        pytorch_version=version,
        dependencies=FileDescr(source=environment),
    )
    script = None
    module = _torchscript(network, example)
    if module is not None:
        module.save(str(folder / "weights.torchscript.pt"))
        script = TorchscriptWeightsDescr(
            source=folder / "weights.torchscript.pt", pytorch_version=version, parent="pytorch_state_dict"
        )
    return WeightsDescr(pytorch_state_dict=state, **({"torchscript": script} if script else {}))


def _summary(loaded: SemanticModel) -> str:
    """One paragraph on the model: its registry entry's description, else its card's, else its kind's."""
    entry = load_registry().get(loaded.card.name or "")
    return (entry and entry.description) or loaded.card.description or loaded.kind.description


def _documentation(loaded: SemanticModel, name: str) -> str:
    card = loaded.card
    figures = card.validation.figures.get("complete", {})
    dice = figures.get("dice", {})
    rows = "".join(f"| {c} | {dice[c]:.3f} | {figures['iou'][c]:.3f} |\n" for c in card.classes if c in dice)
    color = "one gray channel" if card.input.channels == 1 else "three RGB channels"
    gray_note = (
        " For an RGB image, convert it to gray first (luminance, ITU-R 601 weights), as the plugin does."
        if card.input.channels == 1
        else ""
    )
    return f"""# {name}: background / cytoplasm / nucleus in Pap-smear images

{_summary(loaded)}

Exported from napari-cervix (model kind `{card.kind}`), license {LICENSE}.

## Input and output

- Input `{INPUT_ID}`: batch × channel × y × x, {color}, raw intensities (any bit depth) as float32; height and
  width a multiple of {card.divisor}.{gray_note}
- Preprocessing (the plugin's normalization): the image's percentiles {card.input.normalization["low"]:g} and
  {card.input.normalization["high"]:g} per channel map to 0 and 1 (`scale_range` over y, x), then
  values are clipped to [{CLIP_RANGE[0]}, {CLIP_RANGE[1]}]. The plugin takes the percentiles of the whole image;
  tile-wise consumers should pass whole fields, or fields large enough that their percentiles are those of the
  image. The plugin returns all background for a constant image without running the network.
- Output `{OUTPUT_ID}`: batch × class × y × x probabilities (softmax) of {", ".join(card.classes)}; the label of a
  pixel is the argmax (0 background, 1 cytoplasm, 2 nucleus). Tiles should overlap by {2 * HALO} px (halo {HALO}).
  The plugin also extends the image by {EDGE_MARGIN} reflected pixels along its edges before the network sees
  it (numpy's `reflect` padding) and crops them off the output, so the network's own border does not paint a
  rim along the image's edge; the test tensors are without that margin.

## Training data

{", ".join(spec.split(":")[0] for spec in card.training.data)} ({len(card.training.images)} training images).

## Validation

On {len(card.validation.images)} held-out images (split by a hash of each image name), as the model card stores
them (re-measured by `napari-cervix evaluate semantic --model {name}`):
mean pixel accuracy {figures.get("MPA", float("nan")):.3f}, mIoU {figures.get("mIoU", float("nan")):.3f}.

| class | Dice | IoU |
|---|---|---|
{rows}
The test tensors of this package are the plugin's own output (float32) on a generated smear; `bioimageio test`
reproduces them from the test input.
"""


def _citations(card) -> list:
    from bioimageio.spec.model.v0_5 import CiteEntry, Doi, HttpUrl

    entries = [
        entry for prefix, cites in ARCHITECTURE_CITATIONS.items() if card.kind.startswith(prefix) for entry in cites
    ]
    used = {spec.split(":")[0] for spec in card.training.data}
    entries += [cite for key, cite in DATA_CITATIONS.items() if key in used]
    return [
        CiteEntry(text=text, url=HttpUrl(where)) if where.startswith("http") else CiteEntry(text=text, doi=Doi(where))
        for text, where in entries
    ]


#: Cover colors of background, cytoplasm, nucleus.
LABEL_COLORS = np.array([[255, 255, 255], [232, 150, 180], [60, 60, 170]], np.uint8)


def _write_cover(tensors: PackageTensors, path: Path) -> None:
    """A 2:1 cover: the test image beside its labels (the argmax of the test output)."""
    import imageio.v3 as iio

    planes = tensors.input[0]
    lo, hi = np.percentile(planes, [1, 99.5])
    image = np.clip((planes - lo) / max(hi - lo, 1e-6), 0, 1)
    image = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image
    image = (image.transpose(1, 2, 0) * 255).astype(np.uint8)
    labels = LABEL_COLORS[tensors.output[0].argmax(0)]
    iio.imwrite(path, np.concatenate([image, labels], axis=1))


def describe(loaded: SemanticModel, name: str, folder: Path, tensors: PackageTensors):
    """The spec 0.5 model description of ``loaded``, its files written into ``folder``."""
    from bioimageio.spec.model.v0_5 import (
        Author,
        AxisId,
        BatchAxis,
        ChannelAxis,
        FileDescr,
        Identifier,
        InputTensorDescr,
        IntervalOrRatioDataDescr,
        LicenseId,
        ModelDescr,
        OutputTensorDescr,
        ParameterizedSize,
        SizeReference,
        SoftmaxDescr,
        SoftmaxKwargs,
        SpaceInputAxis,
        SpaceOutputAxisWithHalo,
        TensorId,
    )

    card = loaded.card
    np.save(folder / "test_input.npy", tensors.input)
    np.save(folder / "test_output.npy", tensors.output)
    for tensor, file in ((tensors.input, "sample_input.tif"), (tensors.output, "sample_output.tif")):
        tifffile.imwrite(folder / file, tensor)
    _write_cover(tensors, folder / "cover.png")
    (folder / "README.md").write_text(_documentation(loaded, name))
    step = card.divisor
    space = ParameterizedSize(min=max(step, 4 * HALO), step=step)
    inputs = InputTensorDescr(
        id=TensorId(INPUT_ID),
        description=f"Pap-smear image ({', '.join(CHANNEL_NAMES[card.input.channels])}), raw intensities",
        axes=[
            BatchAxis(),
            ChannelAxis(channel_names=[Identifier(c) for c in CHANNEL_NAMES[card.input.channels]]),
            SpaceInputAxis(id=AxisId("y"), size=space),
            SpaceInputAxis(id=AxisId("x"), size=space),
        ],
        test_tensor=FileDescr(source=folder / "test_input.npy"),
        sample_tensor=FileDescr(source=folder / "sample_input.tif"),
        data=IntervalOrRatioDataDescr(type="float32"),
        preprocessing=preprocessing(card),
    )
    outputs = OutputTensorDescr(
        id=TensorId(OUTPUT_ID),
        description=f"class probabilities: {', '.join(card.classes)}",
        axes=[
            BatchAxis(),
            ChannelAxis(channel_names=[Identifier(c) for c in card.classes]),
            *(
                SpaceOutputAxisWithHalo(
                    id=AxisId(axis), size=SizeReference(tensor_id=TensorId(INPUT_ID), axis_id=AxisId(axis)), halo=HALO
                )
                for axis in ("y", "x")
            ),
        ],
        test_tensor=FileDescr(source=folder / "test_output.npy"),
        sample_tensor=FileDescr(source=folder / "sample_output.tif"),
        data=IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0), unit="arbitrary unit"),
        postprocessing=[SoftmaxDescr(kwargs=SoftmaxKwargs(axis=AxisId("channel")))],
    )
    from .. import __version__

    return ModelDescr(
        name=f"napari-cervix {name}",
        description=_summary(loaded)[:1024],
        authors=[Author(name=AUTHORS)],
        cite=_citations(card),
        license=LicenseId(LICENSE),
        documentation=FileDescr(source=folder / "README.md"),
        covers=[FileDescr(source=folder / "cover.png")],
        tags=[
            "napari-cervix",
            "pap-smear",
            "cervical-cytology",
            "semantic-segmentation",
            "nuclei",
            "cytoplasm",
            "2d",
            "pytorch",
            "unet",
        ],
        version=__version__,
        inputs=[inputs],
        outputs=[outputs],
        weights=_weights(loaded, folder, tensors.input),
    )


def export_bioimageio(model: str, out, *, size: int = 256, seed: int = 0) -> Path:
    """Write the bioimage.io package of a semantic model (registered name or safetensors file) to
    ``out/NAME.zip`` and return its path. Test tensors come from a generated ``size``² smear (``seed``)."""
    try:
        from bioimageio.spec import save_bioimageio_package
    except ImportError as err:
        raise ExportError("bioimage.io export needs bioimageio.core: pip install 'napari-cervix[bioimageio]'") from err
    loaded = load_semantic_model(model)
    name = loaded.card.name or Path(str(model)).stem
    tensors = make_test_tensors(loaded, size, seed)
    target = Path(out) / f"{name}.zip"
    with tempfile.TemporaryDirectory(prefix="napari-cervix-bioimageio-") as staging:
        descr = describe(loaded, name, Path(staging), tensors)
        with atomic_path(target) as tmp:
            save_bioimageio_package(descr, output_path=tmp)
    return target


def check_package(package) -> object:
    """bioimageio.core's own test of a package (runs every weight format on the test tensors); returns its
    ValidationSummary (``.status`` "passed"/"valid-format"/"failed", ``.display()``/``.format()``)."""
    from bioimageio.core import test_model

    return test_model(str(package), devices=["cpu"])
