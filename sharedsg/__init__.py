"""sharedsg: Neural Memory Networks whose controllers learn from true and synthetic gradients, with
a central SG service on Ray; :mod:`sharedsg.api` gives any ``nn.Module`` synthetic gradients.

The API's names are exported here lazily: ``import sharedsg`` loads neither torch nor ray.
"""

from typing import Any

API = ("SGGroup", "Endpoint", "connect", "serve")
__all__ = list(API)


def __getattr__(name: str) -> Any:
    if name in API:
        from sharedsg import api

        return getattr(api, name)
    raise AttributeError(f"module 'sharedsg' has no attribute '{name}'")
