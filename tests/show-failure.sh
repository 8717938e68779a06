#!/usr/bin/env bash
# tests/show-failure.sh - shows why a test program failed, the program's own error first: the
# last lines of its output (what bin/vgpu-run captured, without the gpu_proxy log that vgpu-run
# appends on failure), then the last lines of that proxy log. Used by the suites that run CUDA
# programs (tests/kernels, tests/libvgpu/run-e2e.sh).
# usage: show-failure.sh LOG [PROGRAM_LINES [PROXY_LINES]]   (defaults 30 and 10)
set -euo pipefail
log=${1:?usage: show-failure.sh LOG [PROGRAM_LINES [PROXY_LINES]]}
prog_lines=${2:-30}
proxy_lines=${3:-10}
if [[ ! -r "$log" ]]; then
    echo "      (no output: cannot read $log)"
    exit 0
fi
# bin/vgpu-run frames the proxy log with these two lines (show_log there).
begin='^vgpu-run: --- gpu_proxy log (.*) ---$'
end='^vgpu-run: --- end of gpu_proxy log ---$'
own=$(sed "/$begin/,/$end/d" "$log" | tail -n "$prog_lines")
if [[ -n "$own" ]]; then
    echo "      output, last $prog_lines lines ($log):"
    printf '%s\n' "$own" | sed 's/^/      | /'
else
    echo "      (no output in $log)"
fi
proxy=$(sed -n "/$begin/,/$end/p" "$log" | sed '1d;$d' | tail -n "$proxy_lines")
if [[ -n "$proxy" ]]; then
    echo "      gpu_proxy log, last $proxy_lines lines:"
    printf '%s\n' "$proxy" | sed 's/^/      | /'
fi
