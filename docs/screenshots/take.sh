#!/bin/sh
# Screenshot or print a self-contained HTML page (the evidence packet's HTML page)
# with headless Chromium (Debian: apt-get install chromium; poppler-utils for pdftoppm).
#
#   docs/screenshots/take.sh PAGE.html OUT.png          the first screen, A4-shaped, 1240x1754
#   docs/screenshots/take.sh PAGE.html OUT.pdf          printed to A4, as a reader's browser would
#   docs/screenshots/take.sh PAGE.html OUT-page.png 2   page 2 of the print, at 150 dpi (1240x1754)
#
# Flags, and why:
#   --headless                   no window; Chromium 112+ runs the full browser headless
#   --no-sandbox                 needed when run as root (containers, CI)
#   --disable-gpu                no GPU in containers; avoids a noisy fallback
#   --hide-scrollbars            no scrollbar stripe in the screenshot
#   --user-data-dir=TMP          a throwaway profile, so parallel runs do not share a lock
#   --window-size=794,1123       the viewport in CSS px: 210 x 297 mm at 96 px per inch
#   --force-device-scale-factor  1.5617 renders those 794 px as 1240 pixels (A4 at 150 dpi;
#                                1.5625 would round up to 1241 x 1755). A plain
#                                --window-size=1240,1754 works too, but then the 210 mm
#                                sheet is 794 px wide in the middle of a grey frame
#   --screenshot=OUT             captures the viewport only (there is no full-page flag)
#   --no-pdf-header-footer       drops Chromium's own date/URL header and footer from the
#                                PDF (Chromium 120+; older ones spell it
#                                --print-to-pdf-no-header); the page prints its own footer
#                                through @page margin boxes
set -eu

if [ $# -lt 2 ]; then
    sed -n '2,7p' "$0" >&2
    exit 2
fi
page=$1
out=$2
pageno=${3:-}

browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
    echo "take.sh: no chromium on PATH (apt-get install chromium)" >&2
    exit 1
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
url="file://$(cd "$(dirname "$page")" && pwd)/$(basename "$page")"
common="--headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --user-data-dir=$profile"

case "$out" in
*.pdf)
    # shellcheck disable=SC2086
    "$browser" $common --no-pdf-header-footer --print-to-pdf="$out" "$url" 2>"$profile/log" ||
        { cat "$profile/log" >&2; exit 1; }
    ;;
*.png)
    if [ -n "$pageno" ]; then
        # shellcheck disable=SC2086
        "$browser" $common --no-pdf-header-footer --print-to-pdf="$profile/print.pdf" "$url" \
            2>"$profile/log" || { cat "$profile/log" >&2; exit 1; }
        pdftoppm -png -r 150 -f "$pageno" -l "$pageno" -singlefile "$profile/print.pdf" "${out%.png}"
    else
        # shellcheck disable=SC2086
        "$browser" $common --window-size=794,1123 --force-device-scale-factor=1.5617 \
            --screenshot="$out" "$url" 2>"$profile/log" || { cat "$profile/log" >&2; exit 1; }
    fi
    ;;
*)
    echo "take.sh: OUT must end in .png or .pdf" >&2
    exit 2
    ;;
esac
echo "$out"
