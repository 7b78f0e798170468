#!/usr/bin/env bash
# Install what gridmap needs on a Debian 12 machine, skipping what is already there.
#   bash scripts/setup.sh run    PostGIS, the web map's npm packages and its build
#   bash scripts/setup.sh test   the above, plus Chromium + ChromeDriver, GDAL, nginx and QGIS for the tests
# Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"

packages=(postgresql-15-postgis-3)
if [ "$mode" = test ]; then
  # fonts-wqy-microhei: the headless browser tests render the Chinese UI (screenshots) legibly.
  # nginx: bench/replicas.sh and the proxy checks run Debian's nginx in front of two instances.
  # python3-qgis qgis-providers: QGIS headless (tests/tests/qgis.rs), ~170 packages, ~80 s.
  packages+=(chromium chromium-driver gdal-bin fonts-wqy-microhei nginx python3-qgis qgis-providers)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# PostgreSQL must answer on 127.0.0.1:5432 (this machine kind starts it; start it if it stopped).
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "setup: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

# The web map: npm packages from the lockfile, then copy the assets into web-map/dist.
if [ ! -d web-map/node_modules ] || [ web-map/package-lock.json -nt web-map/node_modules/.package-lock.json ]; then
  echo "setup: npm ci (web-map)"
  (cd web-map && npm ci --no-audit --no-fund --loglevel=error)
fi
(cd web-map && npm run --silent build)
