"""Name -> object registries, keyed by the names used in YAML configs."""

from __future__ import annotations

import inspect
from typing import Callable, Generic, Iterable, Iterator, Mapping, TypeVar

from tsdiff.errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of components (models, samplers, datasets, ...).

    Unknown names raise :class:`~tsdiff.errors.UnknownNameError` listing every
    valid name, so a typo in a config is fixed at a glance.

    Example::

        SAMPLERS = Registry("sampler")

        @SAMPLERS.register("ddim")
        def sample_ddim(...): ...

        SAMPLERS.get("ddim")
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            valid = ", ".join(sorted(self._items)) or "(none registered)"
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid {self.kind} names are: {valid}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


def check_options(fn: Callable, options: Mapping, what: str, fixed: Iterable[str] = ()) -> None:
    """Raise ConfigError if ``options`` has keys that ``fn`` does not accept.

    Args:
        fn: the callable (class or function) the options are passed to.
        options: user-supplied keyword arguments.
        what: how to name the options in the message, e.g. ``"model 'csdi'"``.
        fixed: parameters filled by tsdiff itself, not by the user (not listed as valid).
    """
    target = fn.__init__ if inspect.isclass(fn) else fn
    skip = {"self", *fixed}
    valid = [p for p in inspect.signature(target).parameters if p not in skip]
    unknown = sorted(k for k in options if k not in valid)
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for {what}; valid options are: {', '.join(valid)}")
