"""Whole-image inference with a saved model: tiling and stitching, the saved model's checks, predict's
progress."""
