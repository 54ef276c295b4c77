#!/usr/bin/env bash
# Fetch the held-out photos used for the classic backend's benchmark numbers (README "Results"):
# eight photographs from Debian wallpaper packages, none of them in ../shared/data/photos (the
# photos the shipped weights were trained on).
#   bash scripts/heldout_photos.sh OUT_DIR
# then: qprobe bench build --photos OUT_DIR --out bench_heldout --variants 5
set -euo pipefail
out="${1:?usage: heldout_photos.sh OUT_DIR}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
(cd "$work" && apt-get download mate-backgrounds plasma-workspace-wallpapers lomiri-wallpapers-16.04 \
  lomiri-wallpapers-20.04 lomiri-wallpapers ukui-wallpapers >/dev/null 2>&1)
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/x"; done
share="$work/x/usr/share"
while read -r src name; do
  cp -L "$share/$src" "$out/$name"
done <<'LIST'
backgrounds/Kleiber_by_Lukas_Baubkus.jpg deb_Kleiber_by_Lukas_Baubkus.jpg
backgrounds/Bridge_by_Sander_Klootwijk.jpg deb_Bridge_by_Sander_Klootwijk.jpg
backgrounds/Dragonfly_by_Bolly.jpg deb_Dragonfly_by_Bolly.jpg
backgrounds/picosdeeuropa_by_Aitzol_Berasategi.jpg deb_picosdeeuropa_by_Aitzol_Berasategi.jpg
backgrounds/seeding_by_Clements_Engelhardt.jpg deb_seeding_by_Clements_Engelhardt.jpg
backgrounds/mate/nature/Wood.jpg deb_Wood.jpg
backgrounds/mate/nature/YellowFlower.jpg deb_YellowFlower.jpg
wallpapers/ColorfulCups/contents/images/2560x1600.jpg deb_ColorfulCups.jpg
LIST
ls -l "$out"
