"""One registry per kind of public model (encoders, decoders); each family registers itself once.

Why: the list of names, the choice between families, the command-line help
and the docs must agree, and copies written out separately drift apart. So a
family's module registers one spec, and everything else is derived from the
registry (the docs tables are checked against it by a test).

Registering costs nothing: a spec's factory is the family's class, whose
module imports its heavy package (torch, kymatio, transformers, onnxruntime)
only inside the methods that need it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

from dpsynth.errors import OptionError, UserError, join_words


@dataclass(frozen=True, kw_only=True)
class Spec:
    """What a family is called, how it is made and which settings it takes."""

    #: what users type: "scatternet", or "torchscript" for the family "torchscript:PATH"
    name: str
    #: builds the model: factory(**options), or factory(path, **options) when takes_path
    factory: Callable[..., Any]
    #: one line for users (help texts)
    description: str
    #: the name is "NAME:PATH", PATH being the user's model file
    takes_path: bool = False
    #: the keyword settings the factory accepts (None values are never passed)
    options: tuple[str, ...] = ()

    @property
    def display(self) -> str:
        """The name as docs and help write it: "scatternet", "torchscript:PATH"."""
        return f"{self.name}:PATH" if self.takes_path else self.name


S = TypeVar("S", bound=Spec)


class Registry(Generic[S]):
    """Specs of one kind by name, in registration order (the order users see them listed)."""

    def __init__(self, kind: str, path_noun: str) -> None:
        # kind: "encoder"; path_noun: what a user's file is called in errors ("model", "decoder")
        self.kind, self.path_noun = kind, path_noun
        self._specs: dict[str, S] = {}

    def register(self, spec: S) -> S:
        if spec.name in self._specs or ":" in spec.name:
            raise ValueError(f"{self.kind} {spec.name!r} is registered twice or contains ':'")
        self._specs[spec.name] = spec
        return spec

    def __iter__(self) -> Iterator[S]:
        return iter(tuple(self._specs.values()))

    def __getitem__(self, name: str) -> S:
        return self._specs[name]

    def names(self) -> tuple[str, ...]:
        """Every name as users write it, in registration order."""
        return tuple(spec.display for spec in self)

    def help(self) -> str:
        """'a (what a is), b (...) or c (...)': a command's help text for choosing one."""
        return join_words([f"{spec.display} ({spec.description})" for spec in self], "or")

    def resolve(self, name: str) -> tuple[S, str | None] | None:
        """(spec, path) for "scatternet" or "torchscript:PATH"; None for anything else."""
        family, colon, path = name.partition(":")
        spec = self._specs.get(family if colon else name)
        if spec is None or spec.takes_path != bool(colon) or (colon and not path):
            return None
        return spec, (path if colon else None)

    def unknown(self, name: str) -> UserError:
        return UserError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")

    def check_options(self, spec: S, name: str, options: Mapping[str, Any]) -> None:
        """OptionError naming a setting `spec` does not take, with the settings that go with it.

        The settings taken by the same families are named together ("channels
        and normalize apply to torchscript:PATH and onnx:PATH only"): the user
        learns the whole group and where it applies in one line.
        """
        for option in options:
            if option in spec.options:
                continue
            takers = self._takers(option)
            every_option = dict.fromkeys(o for other in self for o in other.options)
            group = [o for o in every_option if self._takers(o) == takers] or [option]
            where = join_words([other.display for other in takers]) or f"no {self.kind}"
            raise OptionError(f"{self.kind} options ({{options}}) apply to {where} only, not {{name}}",
                              group, name=repr(name))

    def _takers(self, option: str) -> list[S]:
        return [spec for spec in self if option in spec.options]

    def create(self, spec: S, name: str, path: str | None, options: Mapping[str, Any]) -> Any:
        """The factory's result; its ValueErrors, and anything a user's file raises, as one-line UserErrors."""
        try:
            return spec.factory(**options) if path is None else spec.factory(path, **options)
        except Exception as exc:
            if path is None:
                if isinstance(exc, ValueError):
                    raise UserError(f"{self.kind} {name!r}: {one_line(exc)}") from exc
                raise
            where = f"{spec.name} {self.path_noun} {path}"
            if isinstance(exc, (UserError, ValueError)):
                raise UserError(f"{where}: {one_line(exc)}") from exc
            # torch / onnxruntime raise many types for a file that is not a model
            raise UserError(f"{where} does not load: {type(exc).__name__}: {one_line(exc)}") from exc

    def build(self, name: str, options: Mapping[str, Any]) -> Any:
        """resolve, check_options and create in one call; None-valued options count as not given."""
        name = (name or "").strip()
        found = self.resolve(name)
        if found is None:
            raise self.unknown(name)
        spec, path = found
        given = {key: value for key, value in options.items() if value is not None}
        self.check_options(spec, name, given)
        return self.create(spec, name, path, given)


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters), or its type's name."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
