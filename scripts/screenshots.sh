#!/usr/bin/env bash
# The report's and the status page's pictures in the docs, from the last `make demo` run:
# Debian's headless Chromium photographs .driftline/demo/report/{eta,status}.html.
set -euo pipefail
cd "$(dirname "$0")/.."
pages=.driftline/demo/report
[ -f "$pages/eta.html" ] || { echo "no $pages/eta.html: run make demo first" >&2; exit 1; }
mkdir -p docs/images
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
shoot() {  # page, picture, height
  chromium --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --window-size="1200,$3" --screenshot="$2" \
    "file://$PWD/$1" 2>/dev/null
}
shoot "$pages/eta.html" docs/images/report.png 1700
shoot "$pages/status.html" docs/images/status.png 900
echo "wrote docs/images/report.png, docs/images/status.png"
