"""Ir per request of a callgrind window, less its idle window, and where it goes.

Usage: callgrind_breakdown.py WINDOW IDLE REQUESTS
Prints the net Ir per request on the first line, then the self cost per request
grouped by the crate (or libc part) a function's symbol names, largest first.
The grouping is by name, so generic code is charged to the crate whose type or
trait it instantiates (e.g. a poem endpoint wrapper around a doorman closure
counts as poem): a map of where instructions go, not an exact bill.
"""

import re
import sys
from collections import Counter

window, idle, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

STD = {"core", "alloc", "std"}


def group(fn, obj):
    if "libc.so" in obj:
        if re.search(r"mem(cpy|move|set)|memcmp|bcmp", fn):
            return "libc memcpy/memset"
        if re.search(r"malloc|free|realloc|calloc|tcache|_int_", fn):
            return "libc malloc/free"
        return "libc other"
    if "__rust_alloc" in fn or "__rust_dealloc" in fn or "__rdl_" in fn or "__rust_realloc" in fn:
        return "libc malloc/free"
    if not obj.endswith(("doorman", "doorman-floor")):
        return obj.rsplit("/", 1)[-1]
    m = re.match(r"<([a-z_][a-z0-9_]*)::[^ ]* as ([a-z_][a-z0-9_]*)::", fn)
    if m:
        return m.group(2) if m.group(1) in STD else m.group(1)
    m = re.search(r"([a-z_][a-z0-9_]*)::", fn)
    return m.group(1) if m else "other"


def costs(path):
    """Self cost per function group, read from the callgrind file itself
    (callgrind_annotate charges a dump's still-active frames inclusively)."""
    names = {"ob": {}, "fn": {}}
    obj = fn = ""
    total, by = 0, Counter()
    after_calls = False
    for line in open(path):
        line = line.rstrip("\n")
        if not line:
            continue
        head = line[0]
        if head.isdigit() or head in "+-*":
            if after_calls:
                after_calls = False  # the inclusive cost of a call, not self cost
                continue
            parts = line.split()
            if len(parts) >= 2:
                by[group(fn, obj)] += int(parts[1])
            continue
        key, _, rest = line.partition("=")
        if key in ("ob", "fn"):
            m = re.match(r"\((\d+)\)(?: (.*))?$", rest)
            if m:
                if m.group(2) is not None:
                    names[key][m.group(1)] = m.group(2)
                value = names[key].get(m.group(1), "")
            else:
                value = rest
            if key == "ob":
                obj = value
            else:
                fn = value
        elif key in ("cob", "cfn", "cfi", "cfl"):
            m = re.match(r"\((\d+)\)(?: (.*))?$", rest)
            if m and m.group(2) is not None and key in ("cob", "cfn"):
                names[key[1:]][m.group(1)] = m.group(2)
        elif key == "calls":
            after_calls = True
        elif line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
    return total, by


t_w, by_w = costs(window)
t_i, by_i = costs(idle)
print(round((t_w - t_i) / n))
net = Counter({k: by_w[k] - by_i.get(k, 0) for k in by_w})
for name, ir in net.most_common(14):
    print(f"{name}\t{ir / n:.0f}")
