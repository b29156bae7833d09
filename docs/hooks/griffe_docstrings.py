"""Griffe extension for the API reference: reads the library's docstrings as they are written.

Loaded by mkdocstrings (``extensions:`` in mkdocs.yml), it rewrites each docstring before it is
rendered, without touching the source:

- Sphinx roles (``:func:`name```, ``:class:`~pkg.Name```, ``:mod:`.ode```, ...) become
  cross-references: links where the target is documented on the site, code where it is not;
- a Google-style entry that documents several parameters at once (``rtol, atol: ...``) becomes
  one entry per parameter, so that each shows its own default from the signature.
"""
from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc|const):`(~?)([^`]+)`")
_SECTION = re.compile(
    r"^(\s*)(Args|Arguments|Parameters|Keyword Args|Keyword Arguments|Other Parameters):\s*$")
_SHARED_ENTRY = re.compile(r"^(\s+)(\*{0,2}\w+(?:, \*{0,2}\w+)+): ?(.*)$")


def _scope(obj: griffe.Object, name: str) -> str:
    """The path that ``name`` (as written in a docstring of ``obj``) refers to."""
    if name.startswith("."):
        package = obj.module if obj.module.is_package else obj.module.parent
        dots = len(name) - len(name.lstrip("."))
        for _ in range(dots - 1):
            package = package.parent or package
        return f"{package.path}.{name.lstrip('.')}"
    head, _, rest = name.partition(".")
    if head in obj.modules_collection.members:
        return name
    try:
        path = obj.resolve(head)
    except griffe.NameResolutionError:
        return name
    return f"{path}.{rest}" if rest else path


def _canonical(obj: griffe.Object, path: str) -> str:
    try:
        return obj.modules_collection[path].canonical_path
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return path


def _link_roles(obj: griffe.Object, text: str) -> str:
    def link(match: re.Match) -> str:
        tilde, name = match.groups()
        target = _canonical(obj, _scope(obj, name))
        shown = name.rsplit(".", 1)[-1] if tilde else name.lstrip(".")
        return f'<autoref identifier="{target}" optional><code>{shown}</code></autoref>'

    return _ROLE.sub(link, text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _split_shared_entries(text: str) -> str:
    lines, out, section_indent = text.split("\n"), [], None
    i = 0
    while i < len(lines):
        line = lines[i]
        header = _SECTION.match(line)
        if header:
            section_indent = len(header.group(1))
        elif section_indent is not None and line.strip() and _indent(line) <= section_indent:
            section_indent = None
        entry = _SHARED_ENTRY.match(line) if section_indent is not None else None
        if not entry:
            out.append(line)
            i += 1
            continue
        body = [entry.group(3)]
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > len(entry.group(1))):
            body.append(lines[i])
            i += 1
        for name in entry.group(2).split(", "):
            out.append(f"{entry.group(1)}{name}: " + "\n".join(body).rstrip("\n"))
    return "\n".join(out)


class DocstringsAsWritten(griffe.Extension):
    """Rewrites every docstring of the loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._visit(pkg)

    def _visit(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _split_shared_entries(_link_roles(obj, obj.docstring.value))
        for member in obj.members.values():
            if not member.is_alias:
                self._visit(member)
