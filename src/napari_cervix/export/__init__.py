"""Model packages for use outside napari (bioimage.io: QuPath, deepImageJ, ilastik, bioimageio.core)."""
