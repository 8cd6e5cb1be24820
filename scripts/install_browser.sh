#!/usr/bin/env bash
# Install what the browser test (tests/browser/) needs, idempotently:
#   * Debian's chromium (apt-get; plus fonts-liberation so text in screenshots is legible), at /usr/bin/chromium;
#   * playwright-core from the npm registry, at the version pinned in package.json / package-lock.json (`npm ci`).
# Never downloads a browser of its own: playwright-core has no install script, and `npx playwright install` is not
# used (it cannot work on these machines). A second run with everything in place does nothing and takes ~1 s.
#
#   VSSFLOW_CHROMIUM   the browser to check for (default /usr/bin/chromium; the test reads the same variable)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
CHROMIUM=${VSSFLOW_CHROMIUM:-/usr/bin/chromium}

# -- chromium (Debian) ------------------------------------------------------------------------------------------------
if "$CHROMIUM" --version >/dev/null 2>&1; then
    echo "install_browser: $("$CHROMIUM" --version) already present"
else
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { echo "install_browser: need root (or sudo) to apt-get install chromium" >&2; exit 1; }
        SUDO="sudo"
    fi
    echo "install_browser: installing Debian chromium (apt-get)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation \
        >/dev/null
    "$CHROMIUM" --version
fi

# -- playwright-core (npm, pinned by package-lock.json) ---------------------------------------------------------------
command -v npm >/dev/null || { echo "install_browser: npm is missing (Node.js >= 20 needed)" >&2; exit 1; }
stamp=node_modules/.vssflow-lock-sha256
want=$(sha256sum package-lock.json | cut -c1-64)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -f node_modules/playwright-core/package.json ]; then
    echo "install_browser: node_modules is up to date"
else
    echo "install_browser: npm ci (playwright-core, from package-lock.json)"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
    echo "$want" > "$stamp"
fi
node -e 'const p = require("playwright-core/package.json"); console.log(`install_browser: playwright-core ${p.version}`)'
echo "install_browser: ready in $((SECONDS - start)) s"
