"""Resource types, one sub-package per platform (``linux/``, ``netns/``, ``ns3/``).

Each module defines :class:`~nepi_lab.ResourceManager` subclasses; they register
themselves by type name when imported (see :mod:`nepi_lab.core.registry`).
"""
