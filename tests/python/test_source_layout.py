"""The crate's layout rules of issue 12, checked on the source: no file under src/ over 600
lines (tests excluded), and no import circle between the crate's modules (a module may use its
own submodules; any other `crate::`, `super::` or `self::` path is an arrow, and arrows must
not come back round)."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
MAX_LINES = 600
PATH = r"((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)"


def code_of(path: Path) -> str:
    """The file without comments (doc links are not imports) and without its test module."""
    text = re.sub(r"//[^\n]*", "", path.read_text())
    cut = text.find("#[cfg(test)]")
    return text if cut < 0 else text[:cut]


def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.rs"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] in ("mod", "lib"):
            parts = parts[:-1]
        if parts and parts[-1] == "tests" or parts[:1] == ["bin"]:
            continue
        found["::".join(parts)] = path
    return found


def arrows(mods: dict[str, Path]) -> dict[str, set[str]]:
    def resolve(parts: list[str]) -> str | None:
        for n in range(len(parts), -1, -1):
            name = "::".join(parts[:n])
            if name in mods:
                return name
        return None

    out: dict[str, set[str]] = {}
    for name, path in mods.items():
        me = name.split("::") if name else []
        code = code_of(path)
        targets = [resolve(p.split("::")) for p in re.findall(r"\bcrate::" + PATH, code)]
        for ups, p in re.findall(r"\b((?:super::)+)" + PATH, code):
            base = me[: len(me) - ups.count("super::")]
            targets.append(resolve(base + p.split("::")))
        targets += [resolve(me + p.split("::")) for p in re.findall(r"\bself::" + PATH, code)]
        out[name] = {
            t
            for t in targets
            if t is not None and t != name and not (name == "" or t.startswith(name + "::"))
        }
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_source_file_is_over_600_lines():
    long = {}
    for path in SRC.rglob("*.rs"):
        if path.name == "tests.rs":
            continue
        text = path.read_text()
        cut = text.find("#[cfg(test)]")
        lines = (text if cut < 0 else text[:cut]).count("\n")
        if lines > MAX_LINES:
            long[str(path.relative_to(SRC))] = lines
    assert not long, f"over {MAX_LINES} lines (tests excluded): {long}"


def test_no_import_circle_between_modules():
    graph = arrows(modules())
    assert "session" in graph and "wire::frame" in graph  # the scan found the crate
    assert "wire::frame" in graph["wire::message"] or "wire" in graph["session::relay"]  # arrows found
    found = cycles(graph)
    assert not found, "import circles: " + "; ".join(
        " -> ".join(c) + " (" + ", ".join(f"{a} uses {sorted(graph[a] & set(c))}" for a in c) + ")" for c in found
    )


def test_the_circle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
