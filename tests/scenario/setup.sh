#!/usr/bin/env bash
# Installs what the seed scenario needs, idempotently, on a Debian machine as root:
# Debian packages (python3-venv, postgresql, openssl, curl, gzip), a Python venv with the pinned
# clients of requirements.txt, and a self-signed CA with one server certificate for the
# stand-in host names. Re-running it does nothing that is already done.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

log() { echo "setup.sh: $*" >&2; }
[[ $EUID -eq 0 ]] || { log "run as root (it installs Debian packages and writes $CW_SCENARIO_CACHE)"; exit 2; }

# --- Debian packages --------------------------------------------------------------------------
need_pkgs=()
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v curl >/dev/null || need_pkgs+=(curl)
command -v gzip >/dev/null || need_pkgs+=(gzip)
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkgs+=(postgresql)
if ((${#need_pkgs[@]})); then
    log "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
    # Debian's postgresql package starts a cluster on 5432; the scenario runs its own cluster.
fi
id postgres >/dev/null 2>&1 || { log "user postgres missing after installing postgresql"; exit 1; }

# --- Python venv (Debian's /usr/bin/python3: its ssl module uses the system libssl.so.3, which
# the probe's uprobes see) -----------------------------------------------------------------------
req="$CW_SCENARIO_DIR/requirements.txt"
stamp="$CW_SCENARIO_VENV/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ ! -x "$CW_SCENARIO_VENV/bin/python3" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    log "creating the venv in $CW_SCENARIO_VENV"
    mkdir -p "$(dirname "$CW_SCENARIO_VENV")"
    /usr/bin/python3 -m venv "$CW_SCENARIO_VENV"
    "$CW_SCENARIO_VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
    echo "$want" >"$stamp"
fi

# --- PKI: a CA and a server certificate for every stand-in name --------------------------------
if [[ ! -s "$CW_SCENARIO_PKI/server.pem" || ! -s "$CW_SCENARIO_PKI/ca.pem" ]]; then
    log "creating the scenario CA and server certificate in $CW_SCENARIO_PKI"
    mkdir -p "$CW_SCENARIO_PKI"
    cd "$CW_SCENARIO_PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
        -subj "/CN=chainwatch scenario test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout ca.key -out ca.pem 2>/dev/null
    san="DNS:localhost,IP:127.0.0.1"
    for h in $CW_SCENARIO_HOSTS; do san="$san,DNS:$h"; done
    openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=llm.internal.test" \
        -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' "$san" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -sha256 \
        -extfile server.ext -out server.pem 2>/dev/null
    rm -f server.csr
    chmod 600 ca.key server.key
fi
openssl verify -CAfile "$CW_SCENARIO_PKI/ca.pem" "$CW_SCENARIO_PKI/server.pem" >/dev/null

log "ready: venv $CW_SCENARIO_VENV, PKI $CW_SCENARIO_PKI"
