"""The methods of the course, one module per family.

=============== ==================================================================
``manual``      conventional suppression: mask-guided subtraction, classical filters
``autoencoder`` Gusarev-style convolutional autoencoder, VAE and VQ-VAE baselines
``cnn``         ResNet-BS, U-Net, UNet++ with deep supervision
``gan``         conditional GAN (pix2pix-style) and the multi-scale idea of MCA-Net
``distillation`` a large teacher distilled into a small, fast student
``adaptation``  from paired phantom data to unpaired real radiographs
``vqgan``       BS-LDM stage 1: the ML-VQGAN autoencoder
``ldm``         BS-LDM stage 2: conditional latent diffusion (and ``unet``, its noise estimator)
=============== ==================================================================

Importing this package registers every trainable method with
:func:`bs_lib.train.register_method`, so ``python -m bs_lib train`` and the
benchmark can build any of them by name.
"""

from bs_lib.models import adaptation, autoencoder, cnn, distillation, gan, ldm, manual, vqgan  # noqa: F401

FAMILY_MODULES = ("manual", "autoencoder", "cnn", "gan", "distillation", "adaptation", "vqgan", "ldm")
