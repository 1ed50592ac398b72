#!/bin/bash
# docs/configuration.md and the key table agree (`switchyard config-keys`
# prints the table): every key in the table is documented, every
# documented key exists, and each default and each "Applied" class is the
# table's. The doc's key tables are read per section: "### `proxy`" makes
# `timeouts.client` proxy.timeouts.client, a heading with several names
# ("### `instances.blue`, `instances.green`") documents its keys for each,
# and a "(list" heading documents the keys of one item (listeners[].port).
# The Default cell is its first `code` span, or "required" when it says
# **required**. Needs no root.
. "$(dirname "$0")/lib.sh"

SY=$SY_BUILD/switchyard
[ -x "$SY" ] || fail "$SY not built"
"$SY" config-keys >"$T_TMP/keys.tsv" || fail "switchyard config-keys failed"
[ -s "$T_TMP/keys.tsv" ] || fail "config-keys printed nothing"
# Into a variable first: jq 1.6 -e passes on empty input.
keys_json=$("$SY" config-keys --json) && [ -n "$keys_json" ] || fail "config-keys --json"
jq -e '.keys | length > 0' <<<"$keys_json" >/dev/null || fail "config-keys --json: $keys_json"

python3 - "$T_TMP/keys.tsv" "$SY_ROOT/docs/configuration.md" <<'EOP' || fail "docs/configuration.md and the key table differ"
import re, sys

table = {}
for line in open(sys.argv[1]):
    key, default, apply = line.rstrip("\n").split("\t")
    table[key] = (default, apply)

doc = {}
prefixes = None
for n, line in enumerate(open(sys.argv[2]), 1):
    line = line.rstrip("\n")
    if line.startswith("## "):
        prefixes = None
        continue
    m = re.match(r"^### (.*)$", line)
    if m:
        names = re.findall(r"`([^`]+)`", m.group(1))
        if "(list" in m.group(1):
            for p in names:
                doc[p] = ("required" if "required" in m.group(1) else None, None, n)
            names = [p + "[]" for p in names]
        prefixes = names or None
        continue
    if not prefixes or not line.startswith("| `"):
        continue
    cells = [c.strip() for c in line.strip("|").split(" | ")]
    if len(cells) != 5:
        print(f"configuration.md:{n}: expected 5 columns (Key, Type, Default, Applied, Meaning)")
        sys.exit(1)
    key = re.match(r"`([^`]+)`", cells[0]).group(1)
    if "**required" in cells[2]:
        default = "required"
    else:
        m = re.search(r"`([^`]*)`", cells[2])
        default = m.group(1) if m else cells[2]
    apply = cells[3].strip("`")
    for p in prefixes:
        doc[f"{p}.{key}"] = (default, apply, n)

bad = 0
for key, (default, apply) in table.items():
    if key not in doc:
        print(f"not documented: {key} (default {default}, {apply})")
        bad += 1
        continue
    d, a, n = doc[key]
    if d is not None and d != default:
        print(f"configuration.md:{n}: {key}: documented default {d!r}, the table says {default!r}")
        bad += 1
    if a is not None and a != apply:
        print(f"configuration.md:{n}: {key}: documented as {a!r}, the table says {apply!r}")
        bad += 1
for key, (d, a, n) in doc.items():
    if key not in table:
        print(f"configuration.md:{n}: documents {key}, which the table does not have")
        bad += 1
print(f"{len(table)} keys in the table, {len(doc)} documented, {bad} differences")
sys.exit(1 if bad else 0)
EOP
say "PASS"
