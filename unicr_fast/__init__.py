"""unicr_fast: certified robustness by randomized smoothing for any i.i.d. (or radial) noise and any
l_p norm."""
from . import noise
from .backends import available_backends, get_backend
from .radius import RadiusDetails, certified_radius
from .radius.table import RadiusTable
from .smooth import Smooth

__version__ = "0.1.0"
__all__ = ["noise", "available_backends", "get_backend", "certified_radius", "RadiusDetails",
           "RadiusTable", "Smooth"]
