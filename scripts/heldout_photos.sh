#!/usr/bin/env bash
# Fetch the photos used for the classic backend's benchmark numbers (README "Results"): photographs
# from Debian wallpaper packages, none of them in ../shared/data/photos (the photos the shipped
# weights were trained on). Two disjoint sets of eight:
#   heldout     (default) the held-out benchmark's photos
#   validation  a second set: the calibration photos of the shipped detector's operating point
#               (stop 15: qprobe train classic --stage calibrate) and diagnosis; never used for training
#   extra       two photographs and six digital illustrations, the out-of-distribution check (stop 15)
#   renders     eight computer-generated wallpapers (GNOME, Debian themes), a second such check (stop 16)
#   fresh       seven more photographs, in none of the other sets and never looked at before stop 25:
#               smoother, sparser scenes than the held-out eight (sky, a dusk lake, still lifes)
#   bash scripts/heldout_photos.sh OUT_DIR [heldout|validation|extra|renders|fresh]
# then: qprobe bench build --photos OUT_DIR --out bench_heldout --variants 5
set -euo pipefail
out="${1:?usage: heldout_photos.sh OUT_DIR [heldout|validation|extra|renders|fresh]}"
set_name="${2:-heldout}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
(cd "$work" && apt-get download mate-backgrounds plasma-workspace-wallpapers lomiri-wallpapers-16.04 \
  lomiri-wallpapers-20.04 lomiri-wallpapers ukui-wallpapers gnome-backgrounds desktop-base >/dev/null 2>&1)
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/x"; done
share="$work/x/usr/share"
heldout='
backgrounds/Kleiber_by_Lukas_Baubkus.jpg deb_Kleiber_by_Lukas_Baubkus.jpg
backgrounds/Bridge_by_Sander_Klootwijk.jpg deb_Bridge_by_Sander_Klootwijk.jpg
backgrounds/Dragonfly_by_Bolly.jpg deb_Dragonfly_by_Bolly.jpg
backgrounds/picosdeeuropa_by_Aitzol_Berasategi.jpg deb_picosdeeuropa_by_Aitzol_Berasategi.jpg
backgrounds/seeding_by_Clements_Engelhardt.jpg deb_seeding_by_Clements_Engelhardt.jpg
backgrounds/mate/nature/Wood.jpg deb_Wood.jpg
backgrounds/mate/nature/YellowFlower.jpg deb_YellowFlower.jpg
wallpapers/ColorfulCups/contents/images/2560x1600.jpg deb_ColorfulCups.jpg
'
validation='
backgrounds/Fossa_by_Jasper_Roks.jpg val_Fossa_by_Jasper_Roks.jpg
backgrounds/sunset_by_Aitzol_Berasategi.jpg val_sunset_by_Aitzol_Berasategi.jpg
backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg val_aitzgorri_by_Aitzol_Berasategi.jpg
backgrounds/life_by_Aitzol_Berasategi.jpg val_life_by_Aitzol_Berasategi.jpg
backgrounds/umang_by_Abhishek_Mudgal.jpg val_umang_by_Abhishek_Mudgal.jpg
backgrounds/Wine_by_Jakkub_Mede.jpg val_Wine_by_Jakkub_Mede.jpg
backgrounds/mate/nature/Storm.jpg val_Storm.jpg
backgrounds/mate/nature/FreshFlower.jpg val_FreshFlower.jpg
'
extra='
backgrounds/mate/nature/RainDrops.jpg x_RainDrops.jpg
backgrounds/mate/nature/Blinds.jpg x_Blinds.jpg
wallpapers/Flow/contents/images/5120x2880.jpg x_Flow.jpg
wallpapers/Honeywave/contents/images/5120x2880.jpg x_Honeywave.jpg
wallpapers/Shell/contents/images/5120x2880.jpg x_Shell.jpg
wallpapers/SafeLanding/contents/images/5120x2880.jpg x_SafeLanding.jpg
backgrounds/string.jpg x_string.jpg
backgrounds/rhythm.jpg x_rhythm.jpg
'
renders='
backgrounds/gnome/wood-d.webp y_wood-d.webp
backgrounds/gnome/pixels-l.webp y_pixels-l.webp
backgrounds/gnome/licorice-d.webp y_licorice-d.webp
backgrounds/gnome/truchet-l.webp y_truchet-l.webp
backgrounds/gnome/adwaita-d.webp y_adwaita-d.webp
desktop-base/homeworld-theme/plymouth/plymouth_background_homeworld.png y_homeworld-theme_plymouth_plymouth_background_homeworld.png
desktop-base/softwaves-theme/plymouth/plymouth_background_waves.png y_softwaves-theme_plymouth_plymouth_background_waves.png
desktop-base/spacefun-theme/plymouth/background.png y_spacefun-theme_plymouth_background.png
'
fresh='
wallpapers/Kite/contents/images/2560x1600.jpg f_Kite.jpg
wallpapers/summer_1am/contents/images/2560x1600.jpg f_summer_1am.jpg
backgrounds/friends_by_Aitzol_Berasategi.jpg f_friends_by_Aitzol_Berasategi.jpg
backgrounds/Picture_0B_by_freespace.jpg f_Picture_0B_by_freespace.jpg
backgrounds/analogpattern_by_Peter_Nerlich.jpg f_analogpattern_by_Peter_Nerlich.jpg
backgrounds/free_by_Peter_Nerlich.jpg f_free_by_Peter_Nerlich.jpg
backgrounds/greentock_by_Peter_Nerlich.jpg f_greentock_by_Peter_Nerlich.jpg
'
case "$set_name" in
  heldout) list="$heldout" ;;
  validation) list="$validation" ;;
  extra) list="$extra" ;;
  renders) list="$renders" ;;
  fresh) list="$fresh" ;;
  *) echo "unknown set: $set_name (heldout, validation, extra, renders or fresh)" >&2; exit 2 ;;
esac
while read -r src name; do
  [ -n "$src" ] && cp -L "$share/$src" "$out/$name"
done <<< "$list"
ls -l "$out"
