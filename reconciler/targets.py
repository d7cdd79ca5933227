"""Targets: a provider instance plus its scope, built and checked in one place.

Both ways a target is named go through here: a list's ``targets:`` item
(``{provider: INSTANCE, SCOPE-FIELD: VALUE}``) and a target name on the command
line (``INSTANCE/SCOPE-VALUE``, or ``INSTANCE/account`` for a type without scope
fields). The instance's provider
type says which keys are scope (they select the target) and which are
attributes of its entries (e.g. a reject type), how a value is checked and how
the target is named. Nothing here knows a provider type by name.
"""

from __future__ import annotations

from collections.abc import Iterable

from .domain import Target
from .models import ProvidersFile, TargetSpec
from .providers import adapter_class, scope_fields

Attrs = tuple[tuple[str, str], ...]


class TargetProblem(ValueError):
    """Why a target cannot be built: one message per problem (each names the key and
    the value)."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def from_spec(spec: TargetSpec, config: ProvidersFile) -> tuple[Target, Attrs]:
    """The target a list's ``targets:`` item names, and the attributes it gives its
    entries; ``TargetProblem`` (every problem, joined) otherwise."""
    inst = config.providers.get(spec.provider)
    if inst is None:
        known = ", ".join(sorted(config.providers)) or "none"
        raise TargetProblem(
            f"unknown provider instance {spec.provider!r} (providers.yaml defines: {known})"
        )
    cls = adapter_class(inst.type)
    caps = cls.capabilities
    known_anywhere = {k for keys in scope_fields().values() for k in keys}
    scope: dict[str, str] = {}
    attrs: dict[str, str] = {}
    problems: list[str] = []
    for key, value in spec.fields().items():
        if key not in known_anywhere:
            problems.append(f"unknown key {key!r}")
            continue
        if key not in caps.scope_fields and key not in caps.attribute_fields:
            allowed = ", ".join(caps.scope_fields + caps.attribute_fields) or "none"
            problems.append(f"{key!r} does not apply to {inst.type} targets (allowed: {allowed})")
            continue
        why = cls.scope_problems(key, value)
        if why:
            problems.append(f"{key}: {why} (got {value!r})")
            continue
        (scope if key in caps.scope_fields else attrs)[key] = cls.canonical(key, value)
    if not problems:
        problems += [f"{inst.type} targets need {k!r}" for k in caps.scope_fields if k not in scope]
    if problems:
        raise TargetProblem(*problems)
    name = cls.target_name(spec.provider, scope)
    target = Target(
        name, spec.provider, inst.type, tuple(sorted(scope.items())), spec.mode == "exclusive"
    )
    return target, tuple(sorted(attrs.items()))


def from_name(name: str, config: ProvidersFile, declared: Iterable[Target] = ()) -> Target:
    """The target ``name`` means: a declared one, or one built from ``INSTANCE/SCOPE``
    (a bare instance name means its only declared target)."""
    by_name = {t.name: t for t in declared}
    if name in by_name:
        return by_name[name]
    instance, _, rest = name.partition("/")
    providers = config.providers
    if instance not in providers:
        known = ", ".join(sorted(by_name) or sorted(providers)) or "none"
        raise TargetProblem(f"unknown target {name!r} (known: {known})")
    inst = providers[instance]
    fields = adapter_class(inst.type).capabilities.scope_fields
    if not rest:
        of_instance = [t for t in by_name.values() if t.provider == instance]
        if len(of_instance) == 1:
            return of_instance[0]
        if not fields:
            rest = "account"
        else:
            choices = ", ".join(t.name for t in of_instance) or f"{instance}/<{'/'.join(fields)}>"
            raise TargetProblem(f"{instance!r} has several possible targets: name one ({choices})")
    if not fields:
        if rest != "account":
            raise TargetProblem(
                f"{inst.type} targets have no scope: the target is {instance}/account"
            )
        values: list[str] = []
    else:
        values = rest.split("/", len(fields) - 1)
        if len(values) != len(fields) or not all(values):
            raise TargetProblem(
                f"target {name!r}: expected {instance}/<{'/'.join(fields)}> for {inst.type}"
            )
    spec = TargetSpec.model_validate(
        {"provider": instance, **dict(zip(fields, values, strict=True))}
    )
    try:
        target, _ = from_spec(spec, config)
    except TargetProblem as exc:
        raise TargetProblem(f"target {name!r}: {exc}") from None
    return by_name.get(target.name, target)
