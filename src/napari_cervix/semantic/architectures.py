"""Names of the semantic architectures, importable without torch (the CLI lists them in --help)."""

SMP_ENCODERS = ("resnet18", "resnet34", "resnet50", "vgg19", "mobilenet_v2", "efficientnet-b2", "densenet121")
ARCHITECTURES = tuple(f"unet-{e}" for e in SMP_ENCODERS) + ("residual-se-unet", "2se-unet")
