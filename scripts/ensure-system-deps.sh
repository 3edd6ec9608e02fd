#!/usr/bin/env bash
# Installs the system packages the test suite needs, only when they are missing.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# Sentinel failover tests (tests/cluster): Debian packages it separately
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
# browser tests: Debian's Chromium (Playwright cannot download browsers here) and iproute2
# for the network namespace they run in
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# the side-by-side benchmark (and its smoke test) runs Janus
command -v janus >/dev/null 2>&1 || need+=(janus)
# TURN tests run a real coturn; the media-recovery browser tests drop UDP with nftables
[ -x /usr/bin/turnserver ] || need+=(coturn)
command -v nft >/dev/null 2>&1 || need+=(nftables)
# the Firefox end-to-end test: Debian's Firefox ESR, driven by puppeteer-core from npm
[ -x /usr/bin/firefox-esr ] || need+=(firefox-esr)
command -v npm >/dev/null 2>&1 || need+=(npm)
# recording tests probe and decode the recorded files with ffprobe/ffmpeg
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages: ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing system packages: ${need[*]} (install them, e.g. apt-get install ${need[*]})" >&2
    exit 1
  fi
fi
firefox_driver="$(dirname "$0")/../tests/e2e/firefox"
if [ ! -d "$firefox_driver/node_modules/puppeteer-core" ]; then
  echo "installing puppeteer-core for the Firefox test (npm ci in tests/e2e/firefox)"
  (cd "$firefox_driver" && npm ci --no-audit --no-fund --loglevel=error)
fi
