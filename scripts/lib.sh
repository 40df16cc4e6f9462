# Shared by scripts/test and scripts/demo.

# SwiftPM builds outside the clone, so repeated runs on one machine build incrementally;
# without write access to /var/cache, fall back to .build in the clone.
if [ -n "${AUTO_SSL_SCRATCH:-}" ]; then
    SCRATCH="$AUTO_SSL_SCRATCH"
elif mkdir -p /var/cache/auto-ssl 2>/dev/null && [ -w /var/cache/auto-ssl ]; then
    SCRATCH=/var/cache/auto-ssl/build
else
    SCRATCH="$PWD/.build"
fi
export SCRATCH

# pip on a Debian-managed Python refuses system installs (PEP 668) unless told otherwise.
pip_install() {
    python3 -m pip install -q --disable-pip-version-check "$@" 2>/dev/null \
        || python3 -m pip install -q --disable-pip-version-check --break-system-packages "$@"
}
