"""The registry of every model the stand-in serves, checked when imported."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from chaoscert.standin import account, base, purchase, stock
from chaoscert.standin.orm import Model


def _registry(models: tuple[Model, ...]) -> Mapping[str, Model]:
    registry = {model.name: model for model in models}
    for model in models:
        for name, fld in model.fields.items():
            comodel = registry.get(fld.comodel) if fld.comodel else None
            if fld.comodel and comodel is None:
                raise RuntimeError(f"{model.name}.{name}: unknown model {fld.comodel}")
            if fld.kind == "one2many" and (
                comodel is None or comodel.fields.get(fld.inverse) is None
            ):
                raise RuntimeError(f"{model.name}.{name}: no inverse {fld.inverse!r}")
    return MappingProxyType(registry)


REGISTRY = _registry((*base.MODELS, *stock.MODELS, *purchase.MODELS, *account.MODELS))
