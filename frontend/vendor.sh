#!/bin/sh
# vendor.sh reinstalls the pinned front-end modules with npm in a temporary
# directory and copies their standalone ES module builds into
# frontend/static/vendor, rewriting the bare imports ("preact",
# "preact/hooks", "@preact/signals-core") to relative paths so the browser
# loads them without an import map or a bundler. The copies are committed:
# go build never needs node. Change a version here, run `make vendor-js`,
# look at the diff, commit.
set -eu

PREACT=10.29.8
HTM=3.1.1
SIGNALS=2.11.4
SIGNALS_CORE=1.14.5

here=$(cd "$(dirname "$0")" && pwd)
out="$here/static/vendor"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cd "$tmp"
echo '{"private":true}' >package.json
npm install --no-audit --no-fund --ignore-scripts --save-exact \
	"preact@$PREACT" "htm@$HTM" \
	"@preact/signals@$SIGNALS" "@preact/signals-core@$SIGNALS_CORE" >/dev/null

nm="$tmp/node_modules"
mkdir -p "$out"
rm -f "$out"/*.js "$out"/LICENSE-*

# copy SRC DEST: the file without its source map comment, with bare imports
# made relative to static/vendor.
copy() {
	sed \
		-e 's#from"preact/hooks"#from"./hooks.module.js"#g' \
		-e 's#from"preact"#from"./preact.module.js"#g' \
		-e 's#from"@preact/signals-core"#from"./signals-core.module.js"#g' \
		-e 's@//# sourceMappingURL=.*$@@' \
		"$nm/$1" >"$out/$2"
	# Fail loudly if a bare import survived (a new dependency upstream).
	if grep -Eq 'from ?"[^./][^"]*"' "$out/$2"; then
		echo "vendor.sh: $2 still has a bare import:" >&2
		grep -Eo 'from ?"[^./][^"]*"' "$out/$2" >&2
		exit 1
	fi
}

copy preact/dist/preact.module.js preact.module.js
copy preact/hooks/dist/hooks.module.js hooks.module.js
copy htm/dist/htm.module.js htm.module.js
copy @preact/signals-core/dist/signals-core.module.js signals-core.module.js
copy @preact/signals/dist/signals.module.js signals.module.js

cp "$nm/preact/LICENSE" "$out/LICENSE-preact"
cp "$nm/htm/LICENSE" "$out/LICENSE-htm"
cp "$nm/@preact/signals/LICENSE" "$out/LICENSE-preact-signals" 2>/dev/null ||
	cp "$nm/@preact/signals-core/LICENSE" "$out/LICENSE-preact-signals"

cat >"$out/VERSIONS" <<V
preact $PREACT
htm $HTM
@preact/signals $SIGNALS
@preact/signals-core $SIGNALS_CORE
V
echo "vendored into $out:"
cat "$out/VERSIONS"
