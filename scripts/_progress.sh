# Sourced by scripts/_venv.sh: _mm_step LABEL COMMAND... runs COMMAND with its output appended
# to "$log"; on a terminal, it shows what it is doing on one line meanwhile, cut
# to the terminal's width less one column (a line as wide as the terminal wraps, and every
# redraw of a wrapped line scrolls a row).
_mm_step() {
    local label="$1"; shift
    "$@" >>"$log" 2>&1 &
    local pid=$! line n text cols
    if [ -t 2 ]; then
        while kill -0 "$pid" 2>/dev/null; do
            cols=$(stty size <&2 2>/dev/null | cut -d ' ' -f 2)  # the terminal on stderr
            [[ "$cols" =~ ^[0-9]+$ ]] && [ "$cols" -ge 20 ] || cols=${COLUMNS:-80}
            [[ "$cols" =~ ^[0-9]+$ ]] && [ "$cols" -ge 20 ] || cols=80
            n=$(grep -c '^Collecting' "$log" || true)
            line=$(grep -E '^(Collecting|Downloading|Building|Installing collected)' "$log" \
                   | tail -n 1 || true)
            text="  $label: $n packages seen  $line"
            printf '\r\033[K%s' "${text:0:$((cols - 1))}" >&2
            sleep 0.5
        done
        printf '\r\033[K  %s: done\n' "$label" >&2
    fi
    wait "$pid"
}
