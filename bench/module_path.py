"""Which archiver modules `archiver snapshot URL` enters, in order of first entry; how many
calls cross from one archiver module into another; and how many of those climb back up
the import layers (a call into a module that imports the caller, directly or not: a
callback, or one of two modules that import each other). The demo site is served and its
article captured once by the CLI, in this process, with a profiler watching calls.

    python bench/module_path.py                 # this checkout
    PAIRS=1 PYTHONPATH=OLD python bench/module_path.py   # another tree; PAIRS lists the climbs
"""
import ast
import contextlib
import io
import os
import sys
import tempfile
import threading
from pathlib import Path

import archiver
root = Path(archiver.__file__).parent

def module_name(path: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__": parts.pop()
    return ".".join(parts)

imports: dict[str, set[str]] = {}
names = {module_name(p) for p in root.rglob("*.py")} - {"archiver"}  # the package face: its names are the API
for p in root.rglob("*.py"):
    mod, deps = module_name(p), set()
    pkg = mod if p.name == "__init__.py" else mod.rpartition(".")[0]
    for node in ast.walk(ast.parse(p.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for a in node.names:
                cand = f"{base}.{a.name}"
                deps.add(cand if cand in names else base)
        elif isinstance(node, ast.Import):
            deps |= {a.name for a in node.names}
    imports[mod] = {d for d in deps if d in names and d != mod}

def reaches(a: str, b: str, seen=None) -> bool:
    seen = seen or set()
    if a in seen: return False
    seen.add(a)
    return b in imports.get(a, ()) or any(reaches(d, b, seen) for d in imports.get(a, ()))

order: list[str] = []
crossings = climbs = 0
pairs = {}
lock = threading.Lock()

def prof(frame, event, arg):
    global crossings, climbs
    if event != "call":
        return
    mod = frame.f_globals.get("__name__", "")
    if not mod.startswith("archiver") or mod == "archiver.demo":
        return
    caller = frame.f_back
    while caller is not None and not caller.f_globals.get("__name__", "").startswith("archiver"):
        caller = caller.f_back
    with lock:
        if caller is not None and caller.f_globals.get("__name__") not in (mod, "archiver.demo"):
            crossings += 1
            if reaches(mod, caller.f_globals["__name__"]):
                climbs += 1
                pairs[(caller.f_globals["__name__"], mod, frame.f_code.co_name)] = pairs.get((caller.f_globals["__name__"], mod, frame.f_code.co_name), 0) + 1
        if mod not in order:
            order.append(mod)

from archiver.cli import main
from archiver import demo
d = Path(tempfile.mkdtemp())
assert main(["init", str(d / "a")]) == 0
with demo.DemoSite() as site:
    cfg = d / "a" / "config.toml"
    cfg.write_text(cfg.read_text().replace("per_host_delay = 1.0", "per_host_delay = 0.0"))
    sys.setprofile(prof); threading.setprofile(prof)
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["--config", str(cfg), "snapshot", "-q", site.article_url])
    sys.setprofile(None); threading.setprofile(None)
print("exit", code, "modules", len(order), "calls between modules", crossings, "of them climbing back up", climbs,
      "between", len({(a, b) for a, b, _ in pairs}), "pairs of modules")
if os.environ.get("PAIRS"):
    for k, v in sorted(pairs.items(), key=lambda kv: -kv[1])[:15]: print(v, k)
print(" -> ".join(m.removeprefix("archiver.") for m in order))
