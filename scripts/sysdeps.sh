#!/usr/bin/env bash
# Install the Debian packages buildwatch's maps and reports use, when missing and when we can.
# Everything is optional at runtime: tests that need a package skip with a reason without it.
set -u
want=()
command -v chromium >/dev/null 2>&1 || want+=(chromium)
[ -e /usr/share/javascript/leaflet/leaflet.js ] || want+=(libjs-leaflet)
fc-list 2>/dev/null | grep -qi 'Noto Sans CJK\|WenQuanYi' || want+=(fonts-noto-cjk fontconfig)
# QGIS, headless, to open the product's styled GeoPackages and QGIS project in a test
/usr/bin/python3 -c 'import qgis.core' >/dev/null 2>&1 || want+=(python3-qgis qgis-providers)
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: not installing ${want[*]} (needs root and apt-get); tests that need them will skip" >&2
  exit 0
fi
echo "installing system packages: ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
# wait for another apt/dpkg run (e.g. a PostGIS install) instead of failing on its lock
lock=(-o DPkg::Lock::Timeout=600)
apt-get "${lock[@]}" update -qq >/dev/null 2>&1 || true
if ! apt-get "${lock[@]}" install -y -qq --no-install-recommends "${want[@]}" >/dev/null 2>&1; then
  for pkg in "${want[@]}"; do  # one at a time: a package that fails does not take the rest along
    apt-get "${lock[@]}" install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1 \
      || echo "note: apt-get could not install $pkg; tests that need it will skip" >&2
  done
fi
exit 0
