# Shared by scripts/demo and scripts/test: create .venv if needed and install the project into it.
# Usage: . scripts/_venv.sh EXTRAS   (EXTRAS is "" or "[dev]")
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "market_maker needs Python 3.11 or newer (found: $("$py" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
fi
stamp=".venv/.installed${1:-}"
. "$root/scripts/_progress.sh"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "Installing market_maker${1:-} into .venv (a minute or two the first time) ..." >&2
    log=.venv/install.log
    : >"$log"
    if ! { _mm_step "[1/2] pip" .venv/bin/python -m pip install --upgrade pip \
           && _mm_step "[2/2] market_maker${1:-}" .venv/bin/python -m pip install -e ".${1:-}"; }
    then
        cat "$log" >&2
        echo "install failed (log: $log)" >&2
        exit 1
    fi
    touch "$stamp"
fi
export PATH="$root/.venv/bin:$PATH"
