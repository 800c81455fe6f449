"""Run programs written for Hatchet's SDK on hatchlite, unchanged.

`install()` makes `import hatchet_sdk` and `from hatchet_sdk.<module> import Name` give
hatchlite's objects, for every module path hatchlite implements (see `paths.py`): a
top-level name and its submodule twin are the same object, and the REST model paths
(`hatchet_sdk.clients.rest.models.v1_task_status`, ...) give hatchlite's models. A name
hatchlite does not have raises `ImportError` at import, saying so and what to use
instead. With no code change at all: `python -m hatchlite.compat script.py [args]` or
`python -m hatchlite.compat -m package.module [args]`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import re
import sys
import types
from collections.abc import Sequence
from typing import Any

from hatchlite.compat import paths
from hatchlite.exceptions import HatchliteError

__all__ = ["HatchetSdkAlreadyImportedError", "NotInHatchliteError", "install", "installed"]

_MARK = "__hatchlite_compat__"


class NotInHatchliteError(ImportError):
    """A `hatchet_sdk` module or name that hatchlite does not provide."""


class HatchetSdkAlreadyImportedError(HatchliteError, RuntimeError):
    """`install()` after the real `hatchet_sdk` was imported: the two would mix."""


def _snake(name: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return paths.REST_MODULE_NAMES.get(name, spaced.lower())


_REST_BY_MODULE = {f"{paths.REST_MODELS}.{_snake(n)}": n for n in paths.REST_CLASSES}


def _packages() -> set[str]:
    """Every module path that has submodules (a package, for the import system)."""
    found = {paths.REST_MODELS}
    for module in [*paths.MODULES, *_REST_BY_MODULE]:
        parts = module.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return found


_PACKAGES = _packages()


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _find(name: str) -> Any:
    """hatchlite's object for a Hatchet name (raises `LookupError` if it has none)."""
    if name in paths.OBJECTS:
        return _load(paths.OBJECTS[name])
    for module in paths.SEARCH:
        found = getattr(importlib.import_module(module), name, _MISSING)
        if found is not _MISSING:
            return found
    raise LookupError(name)


_MISSING = object()


def _unsupported(module: str, name: str | None = None) -> NotInHatchliteError:
    what = f"{module}.{name}" if name else module
    hint = paths.UNSUPPORTED.get(name or "") if name else None
    if hint is None:
        prefixes = (text for m, text in paths.UNSUPPORTED.items() if f"{what}.".startswith(f"{m}."))
        hint = next(prefixes, None)
    message = f"hatchlite does not support {what}" + (f": {hint}" if hint else "")
    return NotInHatchliteError(message, name=module)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves `hatchet_sdk` and its submodules from hatchlite."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != paths.ROOT and not fullname.startswith(paths.ROOT + "."):
            return None
        known = fullname in paths.MODULES or fullname in _PACKAGES
        if not known and fullname not in _REST_BY_MODULE:
            parent, _, last = fullname.rpartition(".")
            if parent in paths.MODULES:  # `from parent import last` of a name it lacks
                raise _unsupported(parent, last)
            raise _unsupported(fullname)
        return importlib.machinery.ModuleSpec(
            fullname, self, is_package=fullname in _PACKAGES or fullname in paths.MODULES
        )

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:
        name = module.__name__
        setattr(module, _MARK, True)
        module.__doc__ = f"{name}, served by hatchlite (hatchlite.compat)"
        overrides = paths.MODULE_OBJECTS.get(name, {})
        wanted = paths.MODULES.get(name, ())
        if name in _REST_BY_MODULE:
            cls = _REST_BY_MODULE[name]
            module.__dict__[cls] = _load(paths.REST_CLASSES[cls])
        for attr in wanted:
            try:
                value = _load(overrides[attr]) if attr in overrides else _find(attr)
            except LookupError:
                continue  # importing it raises, through __getattr__ below
            if attr in paths.UNSUPPORTED and attr not in overrides:
                continue
            module.__dict__[attr] = value
        if name == paths.REST_MODELS:
            for cls, target in paths.REST_CLASSES.items():
                module.__dict__[cls] = _load(target)
        module.__dict__["__getattr__"] = _module_getattr(name)
        module.__dict__["__all__"] = sorted(k for k in module.__dict__ if not k.startswith("_"))


def _module_getattr(module: str) -> Any:
    def __getattr__(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        sub = f"{module}.{attr}"
        if sub in paths.MODULES or sub in _PACKAGES or sub in _REST_BY_MODULE:
            return importlib.import_module(sub)
        # A plain missing attribute, as hasattr(), getattr(m, name, default) and
        # mock.patch expect; `from module import attr` then asks the finder for a
        # submodule `module.attr`, which raises the ImportError saying why.
        error = _unsupported(module, attr)
        raise AttributeError(error.msg, name=attr, obj=sys.modules.get(module))

    return __getattr__


_FINDER = _Finder()


def installed() -> bool:
    return _FINDER in sys.meta_path


def install() -> None:
    """Make `hatchet_sdk` imports give hatchlite (idempotent). Raises
    `HatchetSdkAlreadyImportedError` if the real `hatchet_sdk` is already imported."""
    real = sys.modules.get(paths.ROOT)
    if real is not None and not getattr(real, _MARK, False):
        raise HatchetSdkAlreadyImportedError(
            "the real hatchet_sdk is already imported; call hatchlite.compat.install() "
            "before anything imports hatchet_sdk (or run the program with "
            "`python -m hatchlite.compat`)"
        )
    if not installed():
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    """Undo `install()` and forget the `hatchet_sdk` modules it made (for tests)."""
    if installed():
        sys.meta_path.remove(_FINDER)
    for name in [m for m in sys.modules if m == paths.ROOT or m.startswith(paths.ROOT + ".")]:
        if getattr(sys.modules[name], _MARK, False):
            del sys.modules[name]
