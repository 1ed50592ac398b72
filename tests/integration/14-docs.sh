#!/bin/bash
# The repository stands on its own: no file cites a document that is not in
# it (facts.md, ../shared), every `docs/internals.md, "SECTION"` that a code
# comment or document cites is a heading of docs/internals.md, and every
# Markdown link to internals.md#anchor names one of its headings. Needs no
# root; reads the tracked files only.
. "$(dirname "$0")/lib.sh"
cd "$SY_ROOT" || fail "cd $SY_ROOT"
git rev-parse --git-dir >/dev/null 2>&1 || skip "not a git checkout: the tracked files are unknown"

git ls-files -z -- . ':!tests/integration/14-docs.sh' | xargs -0 grep -IlE 'facts\.md|\.\./shared' -- >"$T_TMP/outside.txt"
[ ! -s "$T_TMP/outside.txt" ] || fail "files cite documents outside the repository: $(tr '\n' ' ' <"$T_TMP/outside.txt")"
say "ok: no file cites facts.md or ../shared"

# Headings, and their GitHub anchors (lower case, punctuation dropped,
# spaces to dashes).
grep -E '^#{2,4} ' docs/internals.md | sed -E 's/^#+ //' >"$T_TMP/headings.txt"
sed -E 's/[^A-Za-z0-9 _-]//g; s/ /-/g' "$T_TMP/headings.txt" | tr 'A-Z' 'a-z' >"$T_TMP/anchors.txt"

# Citations may wrap across comment lines: join the files into one line
# and squeeze the comment leaders away before matching.
n=0
git ls-files -z -- '*.c' '*.h' '*.md' '*.sh' ':!tests/integration/14-docs.sh' | xargs -0 cat |
	tr '\n' ' ' | sed -E 's@[[:space:]]*(\*|//|#)?[[:space:]]+@ @g' |
	grep -oE 'docs/internals\.md,? \(?"[^"]+"' | sed -E 's/^[^"]*"//; s/"$//' | sort -u >"$T_TMP/cited.txt"
while IFS= read -r sec; do
	grep -qxF -- "$sec" "$T_TMP/headings.txt" || fail "cited section \"$sec\" is not a heading of docs/internals.md"
	n=$((n + 1))
done <"$T_TMP/cited.txt"
[ "$n" -gt 0 ] || fail "no citation of docs/internals.md found: the pattern is broken"
say "ok: $n cited sections of docs/internals.md exist"

git ls-files -z '*.md' | xargs -0 grep -ohE 'internals\.md#[a-z0-9_-]+' -- | sed 's/.*#//' | sort -u >"$T_TMP/links.txt"
while IFS= read -r a; do
	grep -qxF -- "$a" "$T_TMP/anchors.txt" || fail "link internals.md#$a names no heading"
done <"$T_TMP/links.txt"
say "ok: $(wc -l <"$T_TMP/links.txt") anchors into docs/internals.md resolve"
