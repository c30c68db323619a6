"""Networks of the framework: the segmentation model, its training-only autoencoder
post-processing (APP), and offline-first loading of pretrained weights."""
