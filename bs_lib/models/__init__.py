"""The methods of the course, one module per family, each the chapter of its family.

A family module defines its networks and objectives and registers each method
with the engine, with its family and label::

    @register_method("pix2pix", family="GAN", label="pix2pix")
    def build_pix2pix(config: TrainConfig) -> ConditionalGAN: ...

Importing this package imports every module in it, so every method is
registered and ``python -m bs_lib train``, the benchmark and
:func:`bs_lib.engine.load_trained` can build any of them by name. A new family
is a new module here, its recipe in ``bs_lib/configs/`` and its test: there is
no list to edit. ``bs_lib.engine.registered_methods()`` lists what is known.
"""

import importlib
import pkgutil

MODULES = tuple(module.name for module in pkgutil.iter_modules(__path__))

for _name in MODULES:
    importlib.import_module(f"{__name__}.{_name}")
