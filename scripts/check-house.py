#!/usr/bin/env python3
"""check-house.py BUILD_DIR — the tree's structural rules, checked from the sources and the
objects that BUILD_DIR holds (README "Layout"):

1. no C function longer than 120 lines outside convert/ (from its signature to its `}`);
2. no call circle between C files: file A calls into B and B, directly or through other
   files, back into A (edges from each object's undefined symbols to the object that
   defines them);
3. includes go only downwards: base <- model <- analyze <- render <- reports <- cli (and
   convert/ and sqlite/ beside analyze/ and model/); inside analyze/ the layers
   input <- store <- replay, stats (replay and stats never include each other); a
   *_internal.h header only from its own folder.

Prints one line per violation, then 'house: N passed, M failed' (one case per rule);
exits 1 when a rule fails."""
import os, re, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT = 120
LAYERS = {'input': 0, 'store': 1, 'replay': 2, 'stats': 2}


def c_files():
    for top in ('base', 'model', 'analyze', 'render', 'reports', 'cli', 'sqlite', 'convert'):
        for root, _, files in os.walk(os.path.join(ROOT, top)):
            for f in sorted(files):
                if f.endswith(('.c', '.h')):
                    yield os.path.relpath(os.path.join(root, f), ROOT)


def long_functions(path):
    """(name, first line, length) of each function definition longer than LIMIT lines."""
    lines = open(os.path.join(ROOT, path), encoding='utf-8').read().split('\n')
    out, start, name = [], None, None
    for i, line in enumerate(lines):
        if start is None:
            m = re.match(r'^[A-Za-z_][\w \*]*?\b(\w+)\(', line)
            if m and not line.rstrip().endswith(';') and not line.startswith(('typedef', 'struct', 'enum')):
                # the body opens on this line or a following signature line
                j = i
                while j < len(lines) and '{' not in lines[j] and not lines[j].rstrip().endswith(';'):
                    j += 1
                if j < len(lines) and '{' in lines[j]:
                    start, name = i, m.group(1)
        elif line.startswith('}'):
            if i - start + 1 > LIMIT:
                out.append((name, start + 1, i - start + 1))
            start = None
    return out


def objects(build):
    """source path -> object path, from the compile commands meson wrote."""
    import json
    cmds = json.load(open(os.path.join(build, 'compile_commands.json')))
    out = {}
    for c in cmds:
        src = os.path.relpath(os.path.join(c['directory'], c['file']), ROOT)
        m = re.search(r'-o (\S+)', c['command'])
        if m and not src.startswith(('tests', 'fuzz', 'bench')) and src.endswith('.c'):
            out[src] = os.path.join(c['directory'], m.group(1))
    return out


def call_graph(objs):
    defined, undefined = {}, {}
    for src, obj in objs.items():
        res = subprocess.run(['nm', obj], capture_output=True, text=True, check=True).stdout
        undefined[src] = set()
        for line in res.split('\n'):
            parts = line.split()
            if len(parts) == 3 and parts[1] in 'TDRB':
                defined[parts[2]] = src
            elif len(parts) == 2 and parts[0] == 'U':
                undefined[src].add(parts[1])
    edges = {src: {defined[s] for s in syms if s in defined and defined[s] != src}
             for src, syms in undefined.items()}
    return edges


def circles(edges):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


# Top-level folders in the order they may use each other: each uses only those before it.
TOP_RANK = {'base': 0, 'model': 1, 'sqlite': 1, 'convert': 2, 'analyze': 2, 'render': 3, 'reports': 4, 'cli': 5}
INCLUDE_ROOTS = ['analyze', 'reports', 'render', 'model', 'base', 'convert', 'cli']


def resolve(path, header):
    """The repository file that `#include "HEADER"` in PATH names (quote rules: the
    including file's folder first, then the include roots meson gives), or None."""
    for d in [os.path.dirname(path)] + INCLUDE_ROOTS:
        cand = os.path.normpath(os.path.join(d, header))
        if os.path.isfile(os.path.join(ROOT, cand)):
            return cand
    return None


def include_violations(path):
    out = []
    top = path.split('/')[0]
    layer = path.split('/')[1] if top == 'analyze' and path.count('/') >= 2 else None
    for n, line in enumerate(open(os.path.join(ROOT, path), encoding='utf-8'), 1):
        m = re.match(r'#include "([\w/]+\.h)"', line)
        target = m and resolve(path, m.group(1))
        if not target:
            continue
        ttop = target.split('/')[0]
        if TOP_RANK.get(ttop, 0) > TOP_RANK.get(top, 0):
            out.append(f'{path}:{n}: {top}/ includes {target}, a folder above it')
        tlayer = target.split('/')[1] if ttop == 'analyze' and target.count('/') >= 2 else None
        if layer and tlayer and tlayer != layer and LAYERS[tlayer] >= LAYERS[layer]:
            out.append(f'{path}:{n}: layer {layer} includes {target}, a layer at or beside it')
        if target.endswith('_internal.h') and os.path.dirname(target) != os.path.dirname(path):
            out.append(f'{path}:{n}: includes {target}, private to its folder')
    return out


def main():
    if len(sys.argv) != 2:
        print(__doc__.split('\n')[0], file=sys.stderr)
        return 2
    lengths, includes = [], []
    for path in c_files():
        if not path.startswith('convert/'):
            for name, line, length in long_functions(path):
                lengths.append(f'{path}:{line}: {name} is {length} lines (limit {LIMIT})')
        includes += include_violations(path)
    calls = ['call circle: ' + ' <-> '.join(comp) for comp in circles(call_graph(objects(sys.argv[1])))]
    rules = [lengths, calls, includes]
    for problems in rules:
        for p in problems:
            print(p)
    failed = sum(1 for r in rules if r)
    # The closing line the test scripts count (one case per rule).
    print(f'house: {len(rules) - failed} passed, {failed} failed')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
