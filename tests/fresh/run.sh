#!/usr/bin/env bash
# tests/fresh/run.sh - `make test-fresh`: proves that the README's set-up commands are all a new
# user needs. Builds a brand-new Debian 12 root with mmdebstrap (variant apt: no make, gcc, git
# or python3), adds only the CUDA toolkit (read-only bind mount at the host's path) and a clone
# of this repository's committed HEAD (/root/vgpu), then runs the README's marked set-up lines
# in it as root, one step at a time, and stops at the first one that fails. Prints each step's
# wall time. By default it runs the lines up to `make demo`; FULL=1 runs them all (`make test`
# too, where a skipped suite also counts as a failure).
#
# The root lives in a private mount and PID namespace (unshare): the root itself (bind-mounted
# onto itself: runc needs / to be a mount point), /proc, /sys and /dev (bind, for podman's
# cgroups and devices), a tmpfs /run and the toolkit are mounted there only, so they vanish with
# it, and every process left behind dies with it. The root itself is removed on exit (KEEP=1 keeps it and prints where).
# Needs: root, mmdebstrap, unshare, git, network access to Debian's package archive.
# Environment: FULL=1, KEEP=1, CUDA_HOME (default /usr/local/cuda), FRESH_DIR (where the root
# is made; default ${TMPDIR:-/var/tmp}), FRESH_SUITE (default bookworm).
set -euo pipefail
me=test-fresh
self=$(readlink -f "$0")
top=$(cd "$(dirname "$self")/../.." && pwd)
begin_mark='<!-- fresh-setup:begin'
end_mark='<!-- fresh-setup:end'

die() { echo "$me: $*" >&2; exit 1; }
fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# ---- inside the private namespaces: mount, then run the steps in the chroot -----------------
if [[ "${1:-}" == --in-namespace ]]; then
    root=${FRESH_ROOT:?} cuda_real=${FRESH_CUDA:?} logdir=${FRESH_LOGDIR:?}
    # The root is a mount point, as on a booted machine: runc (the podman test) makes / rslave
    # and pivots out of it, and both fail with EINVAL on a plain directory.
    mount --bind "$root" "$root" || die "bind-mounting the fresh root onto itself failed"
    mount -t proc proc "$root/proc" || die "mounting /proc in the fresh root failed"
    mount --rbind /sys "$root/sys" || die "bind-mounting /sys into the fresh root failed"
    mount --rbind /dev "$root/dev" || die "bind-mounting /dev into the fresh root failed"
    mount -t tmpfs -o mode=755 tmpfs "$root/run" || die "mounting a tmpfs on /run failed"
    mkdir -p "$root/run/lock"
    mount --bind "$cuda_real" "$root$cuda_real" || die "bind-mounting $cuda_real failed"
    mount -o remount,bind,ro "$root$cuda_real" || die "making $root$cuda_real read-only failed"
    n=0
    while IFS= read -r step; do
        n=$((n + 1))
        echo "### $me: step $n: $step"
        start=$(date +%s)
        rc=0
        chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            /bin/bash -c "cd /root/vgpu && $step" </dev/null 2>&1 | tee "$logdir/step$n.log" ||
            rc=${PIPESTATUS[0]}
        secs=$(($(date +%s) - start))
        echo "$n|$secs|$rc|$step" >>"$logdir/steps"
        if [[ $rc -ne 0 ]]; then
            echo "### $me: step $n failed (exit $rc) after $(fmt_secs "$secs"): $step" >&2
            exit 1
        fi
        if [[ "$step" == "make test"* ]] &&
           ! grep -Eq '^suites: [0-9]+ passed, 0 failed, 0 skipped$' "$logdir/step$n.log"; then
            echo "### $me: step $n: a suite was skipped in the fresh root (it needs something" \
                 "the set-up did not install): $(grep '^suites:' "$logdir/step$n.log" || true)" >&2
            exit 1
        fi
    done <"$logdir/commands"
    exit 0
fi

# ---- outside: checks, the root, the clone, then the namespaces ------------------------------
full=${FULL:-0}
keep=${KEEP:-0}
cuda=${CUDA_HOME:-/usr/local/cuda}
suite=${FRESH_SUITE:-bookworm}
[[ $(id -u) -eq 0 ]] || die "must run as root (mmdebstrap --mode=root, mount and chroot need it)"
for tool in mmdebstrap unshare chroot git; do
    command -v "$tool" >/dev/null ||
        die "'$tool' is not installed (mk/deps.txt lists it; run 'make deps' as root)"
done
[[ -x "$cuda/bin/nvcc" ]] || die "no CUDA toolkit at $cuda (no $cuda/bin/nvcc); set CUDA_HOME"
cuda_real=$(readlink -f "$cuda")
commit=$(git -C "$top" rev-parse --verify HEAD) || die "cannot read HEAD of the repository at $top"

# The README's marked block, from the commit under test: one command per line.
readme=$(git -C "$top" show "$commit:README.md") || die "cannot read README.md at $commit"
mapfile -t steps < <(printf '%s\n' "$readme" | sed -n "/^$begin_mark/,/^$end_mark/p" |
                     grep -v -e '^<!--' -e '^```' -e '^[[:space:]]*$' || true)
[[ ${#steps[@]} -gt 0 ]] ||
    die "README.md has no set-up block between '$begin_mark ...' and '$end_mark ...' lines"
demo_at=0
for i in "${!steps[@]}"; do
    if [[ "${steps[$i]}" == "make demo"* ]]; then demo_at=$((i + 1)); break; fi
done
[[ $demo_at -gt 0 ]] || die "README.md's set-up block has no 'make demo' line"
[[ "$full" == 1 ]] || steps=("${steps[@]:0:$demo_at}")

base=${FRESH_DIR:-${TMPDIR:-/var/tmp}}
mkdir -p "$base" || die "cannot create $base"
work=$(mktemp -d "$base/vgpu-fresh.XXXXXX") || die "mktemp in $base failed"
root="$work/root"
logdir="$top/tests/logs/fresh"
rm -rf "$logdir"
mkdir -p "$logdir"
printf '%s\n' "${steps[@]}" >"$logdir/commands"

cleanup() {
    local rc=$?
    # Every mount was made in the private namespace, which is gone by now; refuse to remove a
    # tree that still has one (it would reach into the host's /dev or the toolkit).
    if grep -q " $work/" /proc/self/mounts; then
        echo "$me: $work still has mounts; not removing it" >&2
    elif [[ "$keep" == 1 ]]; then
        echo "$me: kept the fresh root: $root (KEEP=1)"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

summary=()
timed() { # NAME COMMAND...: runs it, records its wall time
    local name=$1 start secs rc=0
    shift
    start=$(date +%s)
    "$@" || rc=$?
    secs=$(($(date +%s) - start))
    summary+=("$(fmt_secs "$secs")  $name")
    return "$rc"
}

echo "### $me: commit $commit; fresh Debian $suite root in $root"
echo "### $me: the README's set-up lines to run: ${#steps[@]}$([[ "$full" == 1 ]] || echo " (up to make demo; FULL=1 runs all)")"
t0=$(date +%s)
timed "mmdebstrap --variant=apt $suite" \
    mmdebstrap --variant=apt --mode=root "$suite" "$root" ||
    die "mmdebstrap failed to build a Debian $suite root in $root (is Debian's archive reachable?)"
timed "git clone (committed HEAD) into /root/vgpu" \
    git clone --quiet --no-hardlinks --no-checkout "$top" "$root/root/vgpu" ||
    die "git clone of $top into the fresh root failed"
git -C "$root/root/vgpu" checkout --quiet --detach "$commit" ||
    die "checking out $commit in the fresh root failed"
mkdir -p "$root$cuda_real" "$root/run"
if [[ "$cuda" != "$cuda_real" ]]; then # the same symlink the host has, e.g. cuda -> cuda-13.0
    mkdir -p "$(dirname "$root$cuda")"
    ln -s "$(readlink "$cuda")" "$root$cuda" || die "cannot link $cuda in the fresh root"
fi

start=$(date +%s)
rc=0
FRESH_ROOT=$root FRESH_CUDA=$cuda_real FRESH_LOGDIR=$logdir \
    unshare --mount --propagation private --pid --fork -- "$self" --in-namespace || rc=$?
while IFS='|' read -r n secs src step; do
    step=$(sed -e 's/[[:space:]]#.*//' -e 's/[[:space:]]*$//' <<<"$step") # without its comment
    [[ $src -eq 0 ]] || step="$step  (FAILED, exit $src)"
    summary+=("$(fmt_secs "$secs")  step $n: $step")
done < <(cat "$logdir/steps" 2>/dev/null || true)

echo
echo "### $me: wall times (commit ${commit:0:12}, $(date -u '+%Y-%m-%d %H:%M UTC'))"
printf '  %s\n' "${summary[@]}"
echo "  $(fmt_secs $(($(date +%s) - t0)))  total"
if [[ $rc -ne 0 ]]; then
    die "FAILED: in a fresh Debian $suite root with only the CUDA toolkit added, the README's" \
        "set-up does not work (step logs: $logdir)"
fi
echo "### $me: PASS: the README's set-up lines ran in a fresh Debian $suite root"
