#!/usr/bin/env python3
"""Module-graph check for every crate under crates/*/src (issue 15: no import cycles, no
source file over 800 lines outside tests).

For each crate the nodes are its top-level modules: `src/foo.rs` or `src/foo/` with its
submodules (lib.rs / main.rs are the root and not a node). An edge foo -> bar is a reference
from code in foo to bar, found from:

  * `crate::bar...` paths anywhere in code (use declarations, expressions, types, macros),
  * `super::...` / `self::...` paths, resolved against the module they are written in
    (so `super::bar` in `src/foo.rs` or `super::super::bar` in `src/foo/x.rs` is foo -> bar,
    while `super::*` in foo's `mod tests` stays inside foo),
  * use groups, nested to any depth: `use crate::{bar::X, baz::{Y, Z}}`.

Comments, string and char literals are ignored. Test code makes no edges (tests may reach
anywhere): items under `#[cfg(test)]` (e.g. `mod tests { ... }`), files named tests.rs,
files under a `tests/` folder, and files declared by a `#[cfg(test)] mod x;`.

Every strongly connected component with more than one module is reported with the edges
inside it and the file:line of each reference. Any non-test file over MAX_LINES lines is
reported too (tests.rs and files under a tests/ folder are exempt; crates/*/tests is not
scanned). Exit status 1 if anything is reported.

    python3 tools/module_graph.py            # check
    python3 tools/module_graph.py --list     # also print every crate's edges
    python3 tools/module_graph.py --root DIR # check another tree (used by the self-test)
    python3 tools/module_graph.py --readme README.md
                                             # also: the README's layout table names every
                                             # crate and each of its top-level modules

Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field

MAX_LINES = 800
ROOT_FILES = ("lib.rs", "main.rs")


# ---------------------------------------------------------------------------------------------
# Lexing: blank out comments and literals (keeping newlines), then split into tokens.


def strip_source(text: str) -> str:
    """Comments, string literals and char literals replaced by spaces; newlines kept."""
    out: list[str] = []
    i, n = 0, len(text)

    def blank(s: str) -> str:
        return "".join("\n" if c == "\n" else " " for c in s)

    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
            continue
        if c == "/" and nxt == "*":
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
            continue
        # raw strings: r"..", r#".."#, br#".."#, cr#".."#
        m = re.match(r'(?:b|c)?r(#*)"', text[i : i + 260])
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = '"' + m.group(1)
            j = text.find(close, i + m.end())
            j = n if j < 0 else j + len(close)
            out.append(blank(text[i:j]))
            i = j
            continue
        if c == '"' or (
            c in "bc"
            and nxt == '"'
            and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))
        ):
            j = i + (1 if c == '"' else 2)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(n, j + 1)
            out.append(blank(text[i:j]))
            i = j
            continue
        if c == "'" or (c == "b" and nxt == "'" and (i == 0 or not text[i - 1].isalnum())):
            k = i if c == "'" else i + 1
            # char literal: '\..' or 'x' ; otherwise a lifetime / label
            if k + 1 < n and text[k + 1] == "\\":
                j = k + 3  # past the escaped character, which may be a quote
                while j < n and text[j] != "'":
                    j += 1
                j = min(n, j + 1)
                out.append(blank(text[i:j]))
                i = j
                continue
            if k + 2 < n and text[k + 2] == "'":
                out.append(blank(text[i : k + 3]))
                i = k + 3
                continue
        out.append(c)
        i += 1
    return "".join(out)


TOKEN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|::|\S")


@dataclass
class Tok:
    text: str
    line: int
    test: bool = False  # inside a #[cfg(test)] item


def tokenize(text: str) -> list[Tok]:
    toks: list[Tok] = []
    for lineno, line in enumerate(strip_source(text).split("\n"), start=1):
        for m in TOKEN_RE.finditer(line):
            toks.append(Tok(m.group(0), lineno))
    return toks


# ---------------------------------------------------------------------------------------------
# Test regions and inline modules.


def _attr_end(toks: list[Tok], i: int) -> int:
    """toks[i] is '#'; returns the index after the attribute's closing ']'."""
    j = i + 1
    if j < len(toks) and toks[j].text == "!":
        j += 1
    if j >= len(toks) or toks[j].text != "[":
        return i + 1
    depth = 0
    while j < len(toks):
        if toks[j].text == "[":
            depth += 1
        elif toks[j].text == "]":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return j


def _is_cfg_test(toks: list[Tok], i: int, end: int) -> bool:
    words = [t.text for t in toks[i:end]]
    return words[-5:] == ["cfg", "(", "test", ")", "]"] and words[:2] in (["#", "["], ["#", "!"])


def _item_end(toks: list[Tok], j: int) -> int:
    """Index after the item starting at j: up to the first ';' outside brackets, or the
    brace block that closes it."""
    depth = 0
    while j < len(toks):
        t = toks[j].text
        if t in "([":
            depth += 1
        elif t in ")]":
            depth -= 1
        elif t == "{":
            depth += 1
        elif t == "}":
            depth -= 1
            if depth == 0:
                return j + 1
        elif t == ";" and depth == 0:
            return j + 1
        j += 1
    return j


def mark_test_items(toks: list[Tok]) -> tuple[bool, list[str]]:
    """Marks tokens of #[cfg(test)] items. Returns (whole file is test-only, names of
    `#[cfg(test)] mod name;` declarations)."""
    whole = False
    test_mods: list[str] = []
    i = 0
    while i < len(toks):
        if toks[i].text != "#":
            i += 1
            continue
        end = _attr_end(toks, i)
        if not _is_cfg_test(toks, i, end):
            i = end
            continue
        if toks[i + 1].text == "!":
            whole = True
            i = end
            continue
        j = end
        while j < len(toks) and toks[j].text == "#":  # further attributes
            j = _attr_end(toks, j)
        item_end = _item_end(toks, j)
        words = [t.text for t in toks[j:item_end]]
        if "mod" in words:
            k = words.index("mod")
            if k + 2 < len(words) and words[k + 2] == ";":
                test_mods.append(words[k + 1])
        for t in toks[i:item_end]:
            t.test = True
        i = item_end
    return whole, test_mods


def inline_module_paths(toks: list[Tok]) -> list[tuple[str, ...]]:
    """For each token, the path of inline `mod name { ... }` blocks it sits in."""
    paths: list[tuple[str, ...]] = []
    stack: list[tuple[str, int]] = []  # (module name, brace depth at which it closes)
    depth = 0
    pending: str | None = None
    for k, t in enumerate(toks):
        if t.text == "{":
            depth += 1
            if pending is not None:
                stack.append((pending, depth))
                pending = None
        elif t.text == "}":
            if stack and stack[-1][1] == depth:
                stack.pop()
            depth -= 1
        elif t.text == "mod" and k + 2 < len(toks) and toks[k + 2].text == "{":
            pending = toks[k + 1].text
        paths.append(tuple(name for name, _ in stack))
    return paths


# ---------------------------------------------------------------------------------------------
# Paths.


def _parse_tree(toks: list[Tok], i: int) -> tuple[list[list[str]], int]:
    """Parses a use tree / path from toks[i] ('crate', 'super' or 'self', or a group member):
    returns the list of leading segment lists (one per leaf of a group) and the next index.
    Only the leading identifiers matter for the graph."""
    segs: list[str] = []
    while i < len(toks):
        t = toks[i].text
        if t == "{":
            results: list[list[str]] = []
            i += 1
            while i < len(toks) and toks[i].text != "}":
                if toks[i].text == ",":
                    i += 1
                    continue
                sub, i = _parse_tree(toks, i)
                results.extend(segs + s for s in sub)
                # skip `as name` and anything up to , or }
                depth = 0
                while i < len(toks):
                    tt = toks[i].text
                    if tt == "{":
                        depth += 1
                    elif tt == "}":
                        if depth == 0:
                            break
                        depth -= 1
                    elif tt == "," and depth == 0:
                        break
                    i += 1
            return results or [segs], i + 1
        if t == "*" or not re.match(r"[A-Za-z_]", t):
            break
        segs.append(t)
        if i + 1 < len(toks) and toks[i + 1].text == "::":
            i += 2
            continue
        i += 1
        break
    return [segs], i


def resolve(segs: list[str], here: tuple[str, ...]) -> str | None:
    """The top-level module a path starting with crate/super/self names, or None."""
    if not segs:
        return None
    if segs[0] in ("crate", "$crate"):
        mod: list[str] = []
        rest = segs[1:]
    elif segs[0] in ("super", "self"):
        mod = list(here)
        rest = segs
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                if not mod:
                    return None
                mod.pop()
            rest = rest[1:]
    else:
        return None
    full = mod + [s for s in rest if s != "self"]
    # `use crate::foo::{self}` -> foo; a bare `crate`/`super` to the root names no module
    return full[0] if full else None


# ---------------------------------------------------------------------------------------------
# Crates.


@dataclass
class Ref:
    src: str
    dst: str
    file: str
    line: int
    test: bool


@dataclass
class Crate:
    name: str
    src: str
    modules: set[str] = field(default_factory=set)
    refs: list[Ref] = field(default_factory=list)
    long_files: list[tuple[str, int]] = field(default_factory=list)


def module_of(rel: str) -> tuple[str, ...] | None:
    """Module path of a file relative to src/, or None for a crate root."""
    parts = rel.split("/")
    if len(parts) == 1 and parts[0] in ROOT_FILES:
        return None
    if parts[-1] == "mod.rs":
        parts = parts[:-1]
    else:
        parts[-1] = parts[-1][: -len(".rs")]
    return tuple(parts)


def is_test_path(rel: str) -> bool:
    parts = rel.split("/")
    return parts[-1] == "tests.rs" or "tests" in parts[:-1]


def scan_crate(name: str, src: str, display_base: str) -> Crate:
    crate = Crate(name, src)
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for f in sorted(filenames):
            if f.endswith(".rs"):
                files.append(os.path.relpath(os.path.join(dirpath, f), src).replace(os.sep, "/"))
    parsed = {}
    test_files: set[tuple[str, ...]] = set()
    for rel in files:
        mp = module_of(rel)
        if mp is not None and not rel.startswith("bin/"):
            crate.modules.add(mp[0])
        with open(os.path.join(src, rel), encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        toks = tokenize(text)
        whole, test_mods = mark_test_items(toks)
        parsed[rel] = (mp, toks, whole)
        base = mp or ()
        for m in test_mods:
            test_files.add(base + (m,))
        shown = os.path.join(display_base, rel).replace(os.sep, "/")
        nlines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        if nlines > MAX_LINES and not is_test_path(rel):
            crate.long_files.append((shown, nlines))
    for rel in files:
        if rel.startswith("bin/"):
            continue  # separate binary crates
        mp, toks, whole = parsed[rel]
        file_is_test = (
            whole
            or is_test_path(rel)
            or (mp is not None and any(mp[: len(t)] == t for t in test_files))
        )
        here_inline = inline_module_paths(toks)
        shown = os.path.join(display_base, rel).replace(os.sep, "/")
        i = 0
        while i < len(toks):
            t = toks[i].text
            starts = t in ("crate", "super", "self") and i + 1 < len(toks) and toks[i + 1].text == "::"
            if not starts or (i > 0 and toks[i - 1].text in ("::", "in")):
                i += 1
                continue
            seg0 = "$crate" if (i > 0 and toks[i - 1].text == "$" and t == "crate") else t
            here = (mp or ()) + here_inline[i]
            leaves, nxt = _parse_tree(toks, i)
            src_mod = here[0] if here else None
            targets = {resolve([seg0] + leaf[1:], here) for leaf in leaves}
            for dst in sorted(t for t in targets if t is not None):
                if src_mod is None or dst == src_mod or dst not in crate.modules:
                    continue
                crate.refs.append(
                    Ref(src_mod, dst, shown, toks[i].line, file_is_test or toks[i].test)
                )
            i = max(nxt, i + 1)
    return crate


# ---------------------------------------------------------------------------------------------
# Graph.


def edges_of(crate: Crate, tests: bool = False) -> dict[tuple[str, str], list[Ref]]:
    edges: dict[tuple[str, str], list[Ref]] = defaultdict(list)
    for r in crate.refs:
        if r.test == tests:
            edges[(r.src, r.dst)].append(r)
    return dict(sorted(edges.items()))


def sccs(nodes: set[str], edges) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative)."""
    adj: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        adj[a].append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(adj[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(adj[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
    return sorted(c for c in out if len(c) > 1)


def a_cycle(comp: list[str], edges) -> list[str]:
    """A shortest cycle through the component's first module, as a list of modules."""
    members = set(comp)
    adj: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        if a in members and b in members:
            adj[a].append(b)
    start = comp[0]
    prev: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(adj[v]):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w not in seen:
                    seen.add(w)
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


def where(refs: list[Ref], limit: int = 0) -> str:
    locs = list(dict.fromkeys(f"{r.file}:{r.line}" for r in refs))
    if limit and len(locs) > limit:
        return ", ".join(locs[:limit]) + f", … (+{len(locs) - limit})"
    return ", ".join(locs)


def find_crates(root: str) -> list[tuple[str, str, str]]:
    out = []
    crates_dir = os.path.join(root, "crates")
    for name in sorted(os.listdir(crates_dir)):
        src = os.path.join(crates_dir, name, "src")
        if os.path.isdir(src):
            out.append((name, src, os.path.join("crates", name, "src")))
    return out


def readme_problems(readme: str, crates: list[tuple[str, set[str]]]) -> list[str]:
    """What the README's layout table (rows `| `crates/NAME` | ... |`) misses: a crate with
    no row, or a top-level module its row does not name in backticks (`mod` or `mod/`)."""
    rows: dict[str, str] = {}
    for line in readme.splitlines():
        m = re.match(r"\|\s*`crates/([\w-]+)`\s*\|(.*)\|\s*$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    out = []
    for name, modules in crates:
        row = rows.get(name)
        if row is None:
            out.append(f"README layout table has no row for crates/{name}")
            continue
        named = set(re.findall(r"`([\w]+)/?`", row))
        for mod in sorted(modules - named):
            out.append(f"README layout table: crates/{name} does not name its module `{mod}`")
    for name in sorted(set(rows) - {n for n, _ in crates}):
        out.append(f"README layout table names crates/{name}, which does not exist")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", action="store_true", help="print every crate's edges")
    ap.add_argument(
        "--root",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."),
        help="repository root (default: this script's parent folder)",
    )
    ap.add_argument("--readme", help="check this README's layout table against the tree")
    args = ap.parse_args(argv)
    root = os.path.abspath(args.root)

    failed = False
    scanned: list[tuple[str, set[str]]] = []
    for name, src, shown in find_crates(root):
        crate = scan_crate(name, src, shown)
        scanned.append((name, set(crate.modules)))
        edges = edges_of(crate)
        if args.list:
            print(f"== {name}: {len(crate.modules)} modules, {len(edges)} edges")
            for (a, b), refs in edges.items():
                print(f"  {a} -> {b}    {where(refs, 3)}")
            test_edges = {k: v for k, v in edges_of(crate, tests=True).items() if k not in edges}
            for (a, b), refs in test_edges.items():
                print(f"  {a} -> {b}    (tests only) {where(refs, 1)}")
        for comp in sccs(crate.modules, edges):
            failed = True
            cyc = a_cycle(comp, edges)
            print(f"{name}: import cycle among {{{', '.join(comp)}}}: {' -> '.join(cyc)}")
            members = set(comp)
            for (a, b), refs in edges.items():
                if a in members and b in members:
                    print(f"  {a} -> {b}    {where(refs)}")
        for path, n in crate.long_files:
            failed = True
            print(f"{name}: {path} has {n} lines (over {MAX_LINES}; split it or move tests to tests.rs)")
    if args.readme:
        with open(os.path.join(root, args.readme), encoding="utf-8") as f:
            for problem in readme_problems(f.read(), scanned):
                failed = True
                print(problem)
    if not failed:
        print("module graph: no import cycles, no source file over", MAX_LINES, "lines")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
