"""Compiles schema-valid container files into a :class:`~tagserver.container.model.Container`.

The semantic checks the schema cannot make happen here, each reported with its file and JSON path:
duplicate names (tags, variables, triggers, transformations) across files, references to unknown
variables, triggers or tags (with the closest name as hint), variable cycles, regexes that do not
compile, secrets whose environment variable is unset, and secrets used where they could leak (a
condition, event data, a Meta parameter).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tagserver.container.model import Container, ContainerTag
from tagserver.container.transformations import (
    KIND_ORDER,
    Transformation,
    compile_transformation,
)
from tagserver.container.triggers import Trigger, compile_trigger
from tagserver.container.values import EVENT_PREFIX, REFERENCE_RE
from tagserver.container.variables import Variable, compile_variable
from tagserver.exceptions import ConfigIssue
from tagserver.tags import TAG_TYPES, Tag

#: The longest chain of variables each using the next (``a`` uses ``b`` uses ``c``: 3). Values
#: resolve recursively at run time; this keeps them far from Python's recursion limit.
MAX_VARIABLE_DEPTH = 32
#: The keys of a variable definition that hold templates (``table`` values too).
TEMPLATE_KEYS = ("input", "url", "default")


@dataclass(frozen=True)
class ContainerFile:
    """One parsed file: ``where`` is its path as shown in messages. A file that failed the schema
    (``valid`` false) is not compiled, but the names it defines count as known, so that other
    files' references to them are not reported twice."""

    where: str
    data: Any
    valid: bool = True


def _closest(name: str, known: Sequence[str], what: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"known {what}: " + ", ".join(sorted(known)) if known else f"no {what} are defined"


class ContainerBuilder:
    """Collects definitions from every file, then compiles them; the
    :class:`~tagserver.container.values.CompileContext` of variables, triggers and tags."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.issues: list[ConfigIssue] = []
        self.where = ""
        self._variable_defs: dict[str, tuple[str, str, Mapping[str, Any]]] = {}
        self._variables: dict[str, Variable | None] = {}
        self._compiling: list[str] = []
        self._trigger_defs: dict[str, tuple[str, str, Mapping[str, Any]]] = {}
        self._triggers: dict[str, Trigger | None] = {}
        self._broken: set[tuple[str, str]] = set()

    # CompileContext ------------------------------------------------------------------------

    def problem(self, path: str, message: str, hint: str = "") -> None:
        self.issues.append(ConfigIssue(self.where, path, message, hint))

    def variable(self, name: str, *, path: str) -> Variable | None:
        if name in self._variables:
            return self._variables[name]
        if ("variable", name) in self._broken:
            return None
        if name not in self._variable_defs:
            self.problem(
                path, f"unknown variable {name!r}", _closest(name, list(self._variable_defs),
                                                             "variables")
            )
            return None
        if name in self._compiling:
            cycle = " -> ".join([*self._compiling[self._compiling.index(name):], name])
            self.problem(path, f"variable cycle: {cycle}", "a variable may not depend on itself")
            return None
        where, def_path, raw = self._variable_defs[name]
        saved, self.where = self.where, where
        self._compiling.append(name)
        try:
            compiled = compile_variable(name, raw, self, path=def_path, environ=self.environ)
        finally:
            self._compiling.pop()
            self.where = saved
        self._variables[name] = compiled
        return compiled

    # building ------------------------------------------------------------------------------

    def _collect(self, files: Sequence[ContainerFile]) -> None:
        for file in files:
            if not file.valid:
                self._broken.update(_defined_names(file.data))
                continue
            for kind, defs in (("variable", self._variable_defs),
                               ("trigger", self._trigger_defs)):
                for name, raw in file.data.get(kind + "s", {}).items():
                    path = f"$.{kind}s.{name}"
                    if name in defs:
                        self.issues.append(ConfigIssue(
                            file.where, path, f"duplicate {kind} name {name!r}",
                            f"also in {defs[name][0]}"))
                        continue
                    defs[name] = (file.where, path, raw)

    def _refuse_deep_chains(self) -> None:
        """Report each chain of variables deeper than :data:`MAX_VARIABLE_DEPTH` once (at the
        variable that starts it) and leave every variable of it uncompiled."""
        graph = {name: _variable_refs(raw) & self._variable_defs.keys()
                 for name, (_, _, raw) in self._variable_defs.items()}
        chains = _longest_chains(graph)
        deep = {name for name, chain in chains.items() if len(chain) > MAX_VARIABLE_DEPTH}
        for name in sorted(deep):
            if any(name in graph[other] for other in deep):
                continue  # a longer chain through this one is reported
            chain = chains[name]
            shown = chain if len(chain) <= 6 else [*chain[:3], "...", *chain[-2:]]
            where, path, _ = self._variable_defs[name]
            self.issues.append(ConfigIssue(
                where, path,
                f"a chain of {len(chain)} variables each using the next: "
                + " -> ".join(shown) + f" (at most {MAX_VARIABLE_DEPTH})",
                "read event data directly in fewer steps",
            ))
        self._broken.update(("variable", name) for name in deep)

    def _trigger_ref(self, ref: object, *, path: str, default_name: str) -> Trigger | None:
        if isinstance(ref, Mapping):
            return compile_trigger(default_name, ref, self, path=path)
        name = str(ref)
        if ("trigger", name) in self._broken:
            return None
        if name not in self._trigger_defs:
            self.problem(path, f"unknown trigger {name!r}",
                         _closest(name, list(self._trigger_defs), "triggers"))
            return None
        return self._triggers.get(name)

    def build(self, files: Sequence[ContainerFile], *, version: str) -> Container:
        """The container; problems are left in :attr:`issues` (the result is then incomplete)."""
        self._collect(files)
        self._refuse_deep_chains()
        for name in self._variable_defs:
            self.variable(name, path=self._variable_defs[name][1])
        for name, (where, path, raw) in self._trigger_defs.items():
            self.where = where
            self._triggers[name] = compile_trigger(name, raw, self, path=path)

        entries: list[ContainerTag] = []
        tag_files: dict[str, str] = {}
        for file in files:
            if not file.valid:
                continue
            self.where = file.where
            for i, raw in enumerate(file.data.get("tags", [])):
                name = raw["name"]
                if name in tag_files:
                    self.problem(f"$.tags[{i}].name", f"duplicate tag name {name!r}",
                                 f"also in {tag_files[name]}")
                    self._tag(raw, path=f"$.tags[{i}]")  # for its other problems only
                    continue
                tag_files[name] = file.where
                entry = self._tag(raw, path=f"$.tags[{i}]")
                if entry is not None:
                    entries.append(entry)

        transformations = self._transformations(files, tag_names=list(tag_files))
        tags = tuple(
            ContainerTag(
                name=e.name,
                type=e.type,
                tag=e.tag,
                triggers=e.triggers,
                exceptions=e.exceptions,
                require_consent=e.require_consent,
                clients=e.clients,
                transformations=tuple(sorted(
                    (t for t in transformations if t.affects(e.name, e.type)),
                    key=lambda t: KIND_ORDER[t.kind],
                )),
            )
            for e in entries
        )
        return Container(
            tags=tags,
            version=version,
            variables={k: v for k, v in self._variables.items() if v is not None},
            triggers={k: v for k, v in self._triggers.items() if v is not None},
            transformations=tuple(transformations),
        )

    def _tag(self, raw: Mapping[str, Any], *, path: str) -> ContainerTag | None:
        name = raw["name"]
        tag_type = TAG_TYPES[raw["type"]]
        inline = "events" in raw or "conditions" in raw
        if inline and "triggers" in raw:
            self.problem(path, "a tag has either events/conditions or a triggers list, not both",
                         "move the events and conditions into an inline trigger of the list")
        triggers: list[Trigger] = []
        if inline:
            triggers.append(compile_trigger(name, raw, self, path=path))
        for i, ref in enumerate(raw.get("triggers", [])):
            trigger = self._trigger_ref(ref, path=f"{path}.triggers[{i}]", default_name=name)
            if trigger is not None:
                triggers.append(trigger)
        exceptions: list[Trigger] = []
        for i, ref in enumerate(raw.get("exceptions", [])):
            trigger = self._trigger_ref(
                ref, path=f"{path}.exceptions[{i}]", default_name=f"{name} exception {i}"
            )
            if trigger is not None:
                exceptions.append(trigger)
        try:
            tag: Tag = tag_type.from_config(raw, environ=self.environ, ctx=self, path=path)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None
        return ContainerTag(
            name=name,
            type=raw["type"],
            tag=tag,
            triggers=tuple(triggers),
            exceptions=tuple(exceptions),
            require_consent=tuple(raw.get("require_consent", tag_type.default_consent)),
            clients=None if tag_type.clients is None else frozenset(tag_type.clients),
        )

    def _transformations(
        self, files: Sequence[ContainerFile], *, tag_names: list[str]
    ) -> list[Transformation]:
        found: list[Transformation] = []
        seen: dict[str, str] = {}
        for file in files:
            if not file.valid:
                continue
            self.where = file.where
            for i, raw in enumerate(file.data.get("transformations", [])):
                path = f"$.transformations[{i}]"
                if raw["name"] in seen:
                    self.problem(f"{path}.name", f"duplicate transformation name {raw['name']!r}",
                                 f"also in {seen[raw['name']]}")
                    continue
                seen[raw["name"]] = file.where
                tags = raw.get("tags", "*")
                if isinstance(tags, list):
                    for j, tag_name in enumerate(tags):
                        if tag_name not in tag_names and ("tag", tag_name) not in self._broken:
                            self.problem(f"{path}.tags[{j}]", f"unknown tag {tag_name!r}",
                                         _closest(tag_name, tag_names, "tags"))
                found.append(compile_transformation(raw, self, path=path))
        return found


def _variable_refs(raw: Mapping[str, Any]) -> set[str]:
    """The variable names referenced in the templates of one variable definition."""
    names: set[str] = set()
    stack: list[Any] = [raw.get(key) for key in TEMPLATE_KEYS if key in raw]
    stack.extend(raw["table"].values() if isinstance(raw.get("table"), Mapping) else ())
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            for match in REFERENCE_RE.finditer(value):
                name = match.group(1).strip()
                if name != EVENT_PREFIX and not name.startswith(EVENT_PREFIX + "."):
                    names.add(name)
        elif isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return names


def _longest_chains(graph: Mapping[str, set[str]]) -> dict[str, list[str]]:
    """For each variable, the longest chain of references it starts (itself first), without
    recursion; a cycle (reported elsewhere) is cut where it closes."""
    chains: dict[str, list[str]] = {}
    for start in graph:
        if start in chains:
            continue
        stack: list[tuple[str, bool]] = [(start, False)]
        on_path: set[str] = set()
        while stack:
            name, done = stack.pop()
            if done:
                on_path.discard(name)
                best: list[str] = []
                for ref in graph[name]:
                    if ref in chains and len(chains[ref]) > len(best):
                        best = chains[ref]
                chains[name] = [name, *best]
                continue
            if name in chains or name in on_path:
                continue
            on_path.add(name)
            stack.append((name, True))
            stack.extend((ref, False) for ref in graph[name] if ref not in chains)
    return chains


def _defined_names(data: object) -> set[tuple[str, str]]:
    """``(kind, name)`` of what a schema-invalid file defines, as far as it can be read."""
    names: set[tuple[str, str]] = set()
    if not isinstance(data, Mapping):
        return names
    for kind in ("variable", "trigger"):
        defs = data.get(kind + "s")
        if isinstance(defs, Mapping):
            names.update((kind, str(name)) for name in defs)
    tags = data.get("tags")
    if isinstance(tags, list):
        names.update(("tag", str(t["name"])) for t in tags if isinstance(t, Mapping) and "name" in t)
    return names


def build_container(
    files: Sequence[ContainerFile], *, environ: Mapping[str, str], version: str
) -> tuple[Container, list[ConfigIssue]]:
    """Compile ``files`` into a container; the second item lists every problem found."""
    builder = ContainerBuilder(environ)
    container = builder.build(files, version=version)
    return container, builder.issues
