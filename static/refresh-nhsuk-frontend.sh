#!/usr/bin/env bash
# Re-vendor the compiled NHS.UK frontend from the npm registry into
# static/vendor/nhsuk-frontend/.
#
# Usage: static/refresh-nhsuk-frontend.sh [VERSION]
#   VERSION defaults to the one recorded in static/vendor/nhsuk-frontend/VERSION.
#
# Only the compiled, minified CSS and JS and the image assets are kept (no Sass
# sources, no Nunjucks templates, no source maps). The CSS is adjusted so that:
#   - asset URLs are relative to the CSS file (the package hard-codes /assets/),
#   - the @font-face rules that load Frutiger from a third-party host are
#     removed (the service's Content-Security-Policy only allows 'self'; text
#     falls back to Arial as the NHS.UK font stack intends),
#   - sourceMappingURL comments are removed (maps are not vendored).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$here/vendor/nhsuk-frontend"

version="${1:-}"
if [[ -z "$version" ]]; then
  if [[ -f "$dest/VERSION" ]]; then
    version="$(tr -d '[:space:]' < "$dest/VERSION")"
  else
    echo "usage: $0 VERSION (no $dest/VERSION to read it from)" >&2
    exit 2
  fi
fi
if [[ ! "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "refusing non-pinned version '$version' (want X.Y.Z)" >&2
  exit 2
fi

command -v npm >/dev/null || { echo "npm is required" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "nhsuk-frontend@$version" >/dev/null)
tar -xzf "$work/nhsuk-frontend-$version.tgz" -C "$work"
src="$work/package/dist/nhsuk"

for f in nhsuk-frontend.min.css nhsuk-frontend.min.js assets/images assets/manifest.json; do
  [[ -e "$src/$f" ]] || { echo "package layout changed: $f missing in $version" >&2; exit 1; }
done

stage="$work/stage"
mkdir -p "$stage/assets"
cp "$src/nhsuk-frontend.min.js" "$stage/"
cp "$src/assets/manifest.json" "$stage/assets/"
cp -R "$src/assets/images" "$stage/assets/"

# Relative asset URLs, no third-party fonts, no source-map comments.
sed -e 's#url(/assets/#url(assets/#g' \
    -e 's#@font-face{[^}]*}##g' \
    -e 's#/\*\# sourceMappingURL=[^*]*\*/##g' \
    "$src/nhsuk-frontend.min.css" > "$stage/nhsuk-frontend.min.css"
sed -i -e 's#//\# sourceMappingURL=.*$##' "$stage/nhsuk-frontend.min.js"

if grep -q 'url(/assets/\|assets\.nhs\.uk\|sourceMappingURL' "$stage/nhsuk-frontend.min.css"; then
  echo "CSS post-processing did not apply cleanly" >&2
  exit 1
fi

printf '%s\n' "$version" > "$stage/VERSION"
license="$(sed -n 's/^ *"license": *"\([^"]*\)".*/\1/p' "$work/package/package.json" | head -n1)"
cat > "$stage/NOTICE" <<NOTICE
nhsuk-frontend $version (compiled files only), licence: ${license:-see package}.
Copyright (c) NHS England. Source: https://github.com/nhsuk/nhsuk-frontend
Re-vendor with static/refresh-nhsuk-frontend.sh; do not edit these files by hand.
NOTICE

rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
cp -R "$stage" "$dest"
echo "nhsuk-frontend $version vendored into static/vendor/nhsuk-frontend ($(du -sh "$dest" | cut -f1))"
