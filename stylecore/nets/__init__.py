"""The network architectures, one module per role a weights file plays (the catalog's roles).

``encoder`` (the VGG trunks), ``decoder`` (the VGG mirror AdaIN, SANet and RAST share),
``transformer`` (SANet's style attention) and ``discriminator`` (the PatchGANs of GAN training).
They define layers and state-dict keys only: :mod:`stylecore.models` builds them by name and loads
weights into them; :mod:`stylecore.methods` and :mod:`stylecore.train` use them.
"""
