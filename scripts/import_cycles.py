#!/usr/bin/env python3
"""Import circles between a crate's files: the strongly connected components of the graph
"file A names an item of file B" (a `use crate::…`, `use super::…` or an inline `crate::…`
path in code; comments and doc links do not count), per crate.

A path is followed to the file that defines the item: `crate::Conn` goes through lib.rs's
`pub use api::conn::Conn` to api/conn.rs, so a re-export is not a dependency on lib.rs.
`super::` inside an inline `mod tests { … }` is the file itself (no edge).

    scripts/import_cycles.py                 # every crate of the workspace
    scripts/import_cycles.py fibra-net -v    # one crate, with the files of each circle

Prints, per crate: files, import edges, circles (components of more than one file) and the
files in them. No dependencies beyond Python 3's standard library.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ITEM = re.compile(
    r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:unsafe\s+)?(?:const\s+fn|async\s+fn|fn|struct|enum|trait|"
    r"type|const|static|union)\s+([A-Za-z_]\w*)"
)
INLINE_MOD = re.compile(r"\bmod\s+([A-Za-z_]\w*)\s*\{")
USE = re.compile(r"\b(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]*);", re.S)
PATH = re.compile(r"\b(crate|super|self)((?:\s*::\s*[A-Za-z_]\w*)+)")


def strip(src):
    """The source with comments, strings and char literals blanked (newlines kept)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == '"' or (c == "r" and re.match(r'r#*"', src[i:i + 10]) and not src[i - 1:i].isalnum()):
            m = re.match(r'r(#*)"', src[i:i + 10])
            if m:
                end = '"' + m.group(1)
                j = src.find(end, i + len(m.group(0)))
                j = n if j < 0 else j + len(end)
            else:
                j = i + 1
                while j < n and src[j] != '"':
                    j += 2 if src[j] == "\\" else 1
                j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", src[i:i + 4]):
            m = re.match(r"'(\\.|[^\\'])'", src[i:i + 4])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand(tree, prefix=()):
    """`a::{b, c::{d as e}}` → [(('a','b'), 'b'), (('a','c','d'), 'e')]."""
    tree = tree.strip()
    if tree.startswith("::"):
        tree = tree[2:]
    depth, start, parts = 0, 0, []
    # split at the top-level `::{`
    i = tree.find("{")
    if i >= 0 and tree.endswith("}"):
        head = [s.strip() for s in tree[:i].rstrip(":").rstrip().rstrip(":").split("::") if s.strip()]
        body = tree[i + 1:-1]
        for j, ch in enumerate(body):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(body[start:j])
                start = j + 1
        parts.append(body[start:])
        out = []
        for p in parts:
            if p.strip():
                out += expand(p, prefix + tuple(head))
        return out
    m = re.match(r"(.*?)\s+as\s+(\w+)$", tree, re.S)
    alias = None
    if m:
        tree, alias = m.group(1), m.group(2)
    segs = tuple(s.strip() for s in tree.split("::") if s.strip())
    path = prefix + segs
    if path and path[-1] == "self":
        path = path[:-1]
    name = alias or (path[-1] if path else None)
    return [(path, name)]


class Crate:
    def __init__(self, name, root_file, files):
        self.name = name
        self.mods = {}  # module path (tuple) -> file
        base = os.path.dirname(root_file)
        for f in files:
            rel = os.path.relpath(f, base)[:-3].split(os.sep)
            if f == root_file:
                mod = ()
            elif rel[-1] == "mod":
                mod = tuple(rel[:-1])
            else:
                mod = tuple(rel)
            self.mods[mod] = f
        self.files = {f: m for m, f in self.mods.items()}
        self.items = {}  # file -> names defined at the top level
        self.uses = {}  # file -> {name: absolute path}
        self.refs = {}  # file -> [absolute paths]
        for mod, f in self.mods.items():
            self.parse(mod, f)

    def absolute(self, mod, path, inline):
        """A `crate::`/`super::`/`self::` path made absolute; `inline`: the inline modules
        around it (a `super` inside one stays in this file)."""
        here = list(mod) + list(inline)
        segs = list(path)
        if segs and segs[0] == "crate":
            here, segs = [], segs[1:]
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                here = here[:-1]
            segs = segs[1:]
        # a path into one of this file's inline modules is this file
        if len(here) > len(mod):
            return None
        return tuple(here) + tuple(segs)

    def parse(self, mod, f):
        src = strip(open(f, encoding="utf-8").read())
        items, uses, refs = set(), {}, []
        # brace depth and inline modules, per character offset
        depth, stack, inline_at = 0, [], []
        events = []
        for m in INLINE_MOD.finditer(src):
            events.append((m.end() - 1, m.group(1)))
        ev = dict(events)
        ctx = [None] * (len(src) + 1)
        cur = ()
        for i, ch in enumerate(src):
            if ch == "{":
                depth += 1
                if i in ev:
                    stack.append((depth, ev[i]))
                    cur = tuple(n for _, n in stack)
            elif ch == "}":
                if stack and stack[-1][0] == depth:
                    stack.pop()
                    cur = tuple(n for _, n in stack)
                depth -= 1
            ctx[i] = (depth, cur)
        line_start = 0
        for line in src.split("\n"):
            d = ctx[line_start][0] if line_start < len(src) else 0
            if d == 0 or (ctx[line_start][1] == () and d == 0):
                m = ITEM.match(line)
                if m:
                    items.add(m.group(1))
            line_start += len(line) + 1
        used_spans = []
        for m in USE.finditer(src):
            inline = ctx[m.start()][1]
            tree = m.group(1)
            first = re.match(r"\s*(::)?\s*(\w+)", tree)
            if first and not first.group(1) and mod + (first.group(2),) in self.mods:
                tree = "self::" + tree.lstrip()  # `use api::conn::Conn` in the parent of `api`
            elif not first or first.group(2) not in ("crate", "super", "self"):
                # an extern crate, or a name from this module (`use Kind::*`)
                used_spans.append((m.start(), m.end()))
                continue
            for path, name in expand(tree):
                absolute = self.absolute(mod, path, inline)
                if absolute is None:
                    continue
                if name and name != "*" and not inline:
                    uses[name] = absolute
                refs.append(absolute[:-1] if name == "*" else absolute)
            used_spans.append((m.start(), m.end()))
        for m in PATH.finditer(src):
            if any(a <= m.start() < b for a, b in used_spans):
                continue
            segs = [m.group(1)] + [s.strip() for s in m.group(2).split("::") if s.strip()]
            absolute = self.absolute(mod, segs, ctx[m.start()][1])
            if absolute is not None:
                refs.append(absolute)
        self.items[f], self.uses[f], self.refs[f] = items, uses, refs

    def resolve(self, path, seen=None):
        """The file that defines what `path` names (absolute, from the crate root)."""
        seen = seen or set()
        if path in seen:
            return None
        seen.add(path)
        mod = ()
        for i, seg in enumerate(path):
            if mod + (seg,) in self.mods:
                mod = mod + (seg,)
                continue
            f = self.mods[mod]
            if seg in self.items[f]:
                return f
            if seg in self.uses[f]:
                target = self.uses[f][seg] + tuple(path[i + 1:])
                return self.resolve(target, seen) or f
            return f
        return self.mods[mod]

    def graph(self):
        edges = {f: set() for f in self.files}
        for f, refs in self.refs.items():
            for path in refs:
                g = self.resolve(tuple(path))
                if g and g != f:
                    edges[f].add(g)
        return edges


def sccs(edges):
    index, low, on, stack, out, n = {}, {}, set(), [], [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def crates():
    """(name, root file, files) of every library crate in the workspace, and the chatter."""
    found = []
    for d in sorted(os.listdir(ROOT)) + ["."]:
        lib = os.path.join(ROOT, d, "src", "lib.rs")
        if os.path.isfile(lib):
            src = os.path.dirname(lib)
            files = []
            for dirpath, dirnames, filenames in os.walk(src):
                dirnames[:] = [x for x in dirnames if x != "bin"]
                files += [os.path.join(dirpath, x) for x in filenames if x.endswith(".rs") and x != "main.rs"]
            name = os.path.basename(os.path.normpath(os.path.join(ROOT, d))) if d != "." else "fibra"
            found.append((name, lib, sorted(files)))
    for ex in sorted(os.listdir(os.path.join(ROOT, "examples"))) if os.path.isdir(os.path.join(ROOT, "examples")) else []:
        main = os.path.join(ROOT, "examples", ex, "main.rs")
        if os.path.isfile(main):
            files = []
            for dirpath, _, filenames in os.walk(os.path.dirname(main)):
                files += [os.path.join(dirpath, x) for x in filenames if x.endswith(".rs")]
            found.append(("examples/" + ex, main, sorted(files)))
    return found


def main(argv):
    verbose = "-v" in argv
    wanted = [a for a in argv if not a.startswith("-")]
    total = 0
    for name, root, files in crates():
        if wanted and name not in wanted:
            continue
        crate = Crate(name, root, files)
        edges = crate.graph()
        circles = [c for c in sccs(edges) if len(c) > 1]
        in_circles = sum(len(c) for c in circles)
        total += len(circles)
        print(f"{name}: {len(files)} files, {sum(len(e) for e in edges.values())} import edges, "
              f"{len(circles)} circle(s), {in_circles} file(s) in circles"
              + (f", largest {max(len(c) for c in circles)}" if circles else ""))
        if verbose:
            base = os.path.dirname(root)
            for c in circles:
                print("  circle: " + " ".join(os.path.relpath(f, base) for f in c))
                for f in c:
                    inside = sorted(os.path.relpath(g, base) for g in edges[f] if g in c)
                    print(f"    {os.path.relpath(f, base)} -> {', '.join(inside)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
