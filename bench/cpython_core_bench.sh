#!/bin/bash
# CPython's own build options for a smaller core: how much private memory an idle
# CPython 3.11 holds when built from Debian's own source with different configure and
# compile options, against Debian's /usr/bin/python3.11.
#
# What it does:
#   1. adds a deb-src entry for bookworm (a new file under /etc/apt/sources.list.d/, once)
#      and runs `apt-get source python3.11` into build/tmp/cpython-core/src
#      (dpkg-source applies Debian's patches on extraction); no other source of CPython;
#   2. builds each variant out of tree in build/tmp/cpython-core/<variant>: plain
#      `configure [OPTIONS]` + `make -j2` (no PGO, no LTO, no install), each compile
#      step under `flock /tmp/schema-heavy.lock`; a variant already built with the same
#      options is reused;
#   3. runs every build's ./python (and Debian's /usr/bin/python3.11) idle,
#      `-S -I -c "import time; time.sleep(N)"` (bare) and the same after a typical
#      init's imports, reads /proc/PID/smaps_rollup and /proc/PID/smaps after a settle,
#      medians of RUNS runs, the binaries in turn;
#   4. builds `minimal` from the single options that reduced Private_Dirty, measures all
#      again and writes bench/REPORT-cpython-core.md.
#
# How long: about 2 minutes per build on 2 idle cores (7 builds), plus about 2.5 minutes of
# measurements per pass (2 passes): 20-30 minutes on the first run, about 6 with every
# build reused.  Needs root (apt).
#
# usage: bench/cpython_core_bench.sh          (env: RUNS=5 SETTLE=2 JOBS=2)
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$ROOT/build/tmp/cpython-core
REPORT=$ROOT/bench/REPORT-cpython-core.md
LOCK=/tmp/schema-heavy.lock
RUNS=${RUNS:-5}
SETTLE=${SETTLE:-2}
JOBS=${JOBS:-2}
DEBIAN_PY=/usr/bin/python3.11
# A single option must lower the median Private_Dirty by at least this (kB, two pages)
# with the imports, and not raise it by as much bare, to join `minimal`; the runs of one
# binary spread by 4-8 kB.  (--without-freelists measures -12 to -20: on the edge of 16.)
THRESH=8
SRCLIST=/etc/apt/sources.list.d/schema-init-deb-src.sources
BARE='import time; time.sleep(60)'
IMPORTS='import os, sys, time, signal, socket, select, struct, errno, stat, json, re, collections, functools, fcntl, subprocess; time.sleep(60)'

heavy() { flock "$LOCK" "$@"; }
log() { echo "[cpython-core $(date +%H:%M:%S)] $*" >&2; }

[ "$(id -u)" = 0 ] || { echo "run as root (apt-get update, a deb-src entry)" >&2; exit 1; }
mkdir -p "$WORK/src"
"$ROOT/build/ensure-deps.sh" python3.11 dpkg-dev gcc make xz-utils

# ---------------------------------------------------------------- 1. Debian's source
if ! apt-cache showsrc python3.11 2>/dev/null | grep -q '^Version:'; then
    if [ ! -f "$SRCLIST" ]; then
        log "adding $SRCLIST (deb-src for bookworm)"
        cat > "$SRCLIST" <<'EOF'
# Added by schema-init bench/cpython_core_bench.sh: Debian 12 source packages (apt-get source).
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    apt-get update -qq
fi
SRC=$(find "$WORK/src" -maxdepth 1 -type d -name 'python3.11-3.11*' | head -1)
if [ -z "$SRC" ] || [ ! -x "$SRC/configure" ] || [ ! -f "$WORK/src/VERSION" ]; then
    rm -rf "$WORK/src" && mkdir -p "$WORK/src"
    # The installed version first, then the newest: a mirror may lack one of them (here
    # the security archive's sources answered 404).
    inst=$(dpkg-query -W -f='${Version}' python3.11 2>/dev/null || true)
    got=""
    for ver in $inst $(apt-cache showsrc python3.11 | awk '/^Version:/{print $2}' | sort -Vr); do
        log "apt-get source python3.11=$ver"
        if (cd "$WORK/src" && apt-get source -qq "python3.11=$ver" >fetch.log 2>&1); then
            got=$ver; break
        fi
        tail -3 "$WORK/src/fetch.log" >&2
        find "$WORK/src" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
    done
    [ -n "$got" ] || { echo "apt-get source python3.11 failed: no Debian source, stopping" >&2; exit 1; }
    echo "$got" > "$WORK/src/VERSION"
    SRC=$(find "$WORK/src" -maxdepth 1 -type d -name 'python3.11-3.11*' | head -1)
fi
SRCVER=$(cat "$WORK/src/VERSION")
NPATCHES=$(grep -cv '^\s*\(#\|$\)' "$SRC/debian/patches/series")
log "source: python3.11 $SRCVER in $SRC ($NPATCHES Debian patches applied by dpkg-source)"

# small-pools: Objects/obmalloc.c defines USE_LARGE_ARENAS (1 MiB arenas) whenever
# SIZEOF_VOID_P > 4, with no -D to turn it off, so this variant builds from a copy of the
# tree (hard links, obmalloc.c replaced) with that one #define deleted by sed; its 4 KiB
# pools come from -DWITH_PYMALLOC_RADIX_TREE=0 (USE_LARGE_POOLS needs the radix tree).
SMALLSRC=$WORK/src-small-pools
if [ ! -f "$SMALLSRC/.patched" ]; then
    rm -rf "$SMALLSRC"
    cp -al "$SRC" "$SMALLSRC"
    sed -i '/^#define USE_LARGE_ARENAS$/d' "$SMALLSRC/Objects/obmalloc.c"
    if grep -q '^#define USE_LARGE_ARENAS' "$SMALLSRC/Objects/obmalloc.c" ||
       ! grep -q '^#ifdef USE_LARGE_ARENAS' "$SMALLSRC/Objects/obmalloc.c"; then
        echo "obmalloc.c not as expected: sed for small arenas failed" >&2; exit 1
    fi
    touch "$SMALLSRC/.patched"
fi

# ---------------------------------------------------------------- 2. the variants
# name -> configure options / CFLAGS / LDFLAGS / source tree
declare -A CONF CFL LDF CCX TREE
VARIANTS="default no-docstrings no-pymalloc small-pools no-freelists no-pie"
for v in $VARIANTS minimal; do CONF[$v]=""; CFL[$v]=""; LDF[$v]=""; CCX[$v]=""; TREE[$v]=$SRC; done
CONF[no-docstrings]="--without-doc-strings"
CONF[no-pymalloc]="--without-pymalloc"
CFL[small-pools]="-DWITH_PYMALLOC_RADIX_TREE=0"; TREE[small-pools]=$SMALLSRC
CONF[no-freelists]="--without-freelists"
# Debian's /usr/bin/python3.11 is not PIE; gcc's default here is.  The flags go in CC,
# not CFLAGS/LDFLAGS: gcc lets the later of -shared and -no-pie win, and LDFLAGS comes
# after -shared in the link of every extension module (LDSHARED = $(CC) -shared ...),
# while CC comes before it.  Extension modules still get -fPIC after -fno-pie.
CCX[no-pie]="gcc -fno-pie -no-pie"
declare -A BUILDSECS

describe() {  # the configure line of a variant, as in the report
    local v=$1 s
    s="configure${CONF[$v]:+ ${CONF[$v]}}${CFL[$v]:+ CFLAGS=\"${CFL[$v]}\"}${LDF[$v]:+ LDFLAGS=\"${LDF[$v]}\"}"
    [ -n "${CCX[$v]}" ] && s="$s CC=\"${CCX[$v]}\""
    [ "${TREE[$v]}" = "$SMALLSRC" ] && s="$s (obmalloc.c: USE_LARGE_ARENAS deleted)"
    echo "$s"
}

build() {
    local v=$1 dir=$WORK/$1 want t0
    want="$(describe "$v") tree=${TREE[$v]}"
    if [ -x "$dir/python" ] && [ -f "$dir/.built" ] && [ "$(head -1 "$dir/.built")" = "$want" ]; then
        BUILDSECS[$v]=$(sed -n 2p "$dir/.built"); log "$v: reused"; return
    fi
    rm -rf "$dir" && mkdir -p "$dir"
    log "$v: $(describe "$v")"
    t0=$(date +%s)
    # shellcheck disable=SC2086 # CONF: separate words
    (cd "$dir" && heavy "${TREE[$v]}/configure" ${CONF[$v]} \
        ${CFL[$v]:+CFLAGS="${CFL[$v]}"} ${LDF[$v]:+LDFLAGS="${LDF[$v]}"} ${CCX[$v]:+CC="${CCX[$v]}"} \
        >configure.log 2>&1) ||
        { tail -20 "$dir/configure.log" >&2; exit 1; }
    (cd "$dir" && heavy make -j"$JOBS" >make.log 2>&1) || { tail -30 "$dir/make.log" >&2; exit 1; }
    BUILDSECS[$v]=$(( $(date +%s) - t0 ))
    printf '%s\n%s\n' "$want" "${BUILDSECS[$v]}" > "$dir/.built"
    log "$v: built in ${BUILDSECS[$v]} s"
}

# ---------------------------------------------------------------- 3. measuring
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# One idle process: prints "rss pd heap anon bin ext libs other" (kB).  Mappings are
# classed by name; the anonymous mapping that starts where the executable's last mapping
# ends is its .bss and counted with it.  A shared object's .bss is not told apart: the
# kernel merges it with the anonymous mappings (pymalloc's arenas) mmap puts next to it,
# so it stays in "anon".
measure() {
    local bin=$1 code=$2 pid real
    real=$(readlink -f "$bin")
    (cd "$WORK" && exec env -i PATH=/usr/bin:/bin LANG=C.UTF-8 "$bin" -S -I -c "$code") &
    pid=$!; PIDS="$pid"
    sleep "$SETTLE"
    kill -0 "$pid" 2>/dev/null || { echo "$bin died: $code" >&2; exit 1; }
    awk '/^Rss:/ {printf "%s ", $2} /^Private_Dirty:/ {printf "%s ", $2}' "/proc/$pid/smaps_rollup"
    awk -v bin="$real" '
        /^[0-9a-f]+-[0-9a-f]+ / {
            split($1, r, "-"); path = $6
            if (path == "" && r[1] == prevend && prevcat == "bin") cat = "bin"
            else if (path == "") cat = "anon"
            else if (path == bin) cat = "bin"
            else if (path == "[heap]") cat = "heap"
            else if (path ~ /cpython-311|lib-dynload|\/build\/lib\./) cat = "ext"
            else if (path ~ /\.so(\.|$)/) cat = "libs"
            else cat = "other"
            prevend = r[2]; prevcat = cat; next }
        /^Private_Dirty:/ { s[cat] += $2 }
        END { printf "%d %d %d %d %d %d\n", s["heap"], s["anon"], s["bin"], s["ext"], s["libs"], s["other"] }
    ' "/proc/$pid/smaps"
    kill "$pid"; wait "$pid" 2>/dev/null || true; PIDS=""
}

binary_of() { if [ "$1" = debian ]; then echo "$DEBIAN_PY"; else echo "$WORK/$1/python"; fi; }

# measure_all OUT LABEL...: RUNS rounds, every binary and case in turn within a round.
measure_all() {
    local out=$1 run v c code; shift
    : > "$out"
    for v in "$@"; do  # warm-up: the .pyc files of the tree's Lib/
        env -i PATH=/usr/bin:/bin "$(binary_of "$v")" -S -I -c "${IMPORTS%%; time*}" ||
            { echo "$v cannot import: ${IMPORTS%%; time*}" >&2; exit 1; }
    done
    for run in $(seq "$RUNS"); do
        log "measuring, round $run of $RUNS"
        for v in "$@"; do
            for c in bare imports; do
                if [ $c = bare ]; then code=$BARE; else code=$IMPORTS; fi
                measure "$(binary_of "$v")" "$code" > "$WORK/one.txt"
                echo "$v $c $run $(cat "$WORK/one.txt")" >> "$out"
            done
        done
    done
}

# median of column N (1 = rss) for variant V, case C from file F
median() {
    awk -v v="$2" -v c="$3" -v n="$4" '$1 == v && $2 == c {print $(n + 3)}' "$1" | sort -n |
        awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2)}'
}

for v in $VARIANTS; do build "$v"; done

log "pass 1: the single options"
# shellcheck disable=SC2086 # a list of names
measure_all "$WORK/pass1.txt" debian $VARIANTS

# ---------------------------------------------------------------- 4. minimal
taken=""
d_imp=$(median "$WORK/pass1.txt" default imports 2); d_bare=$(median "$WORK/pass1.txt" default bare 2)
for v in $VARIANTS; do
    [ "$v" = default ] && continue
    imp=$(median "$WORK/pass1.txt" "$v" imports 2); bare=$(median "$WORK/pass1.txt" "$v" bare 2)
    if [ $((d_imp - imp)) -ge $THRESH ] && [ $((bare - d_bare)) -lt $THRESH ]; then taken="$taken $v"; fi
done
# no-pymalloc and small-pools are alternatives (no pools without pymalloc): keep the better.
case " $taken " in *" no-pymalloc "*" small-pools "*|*" small-pools "*" no-pymalloc "*)
    if [ "$(median "$WORK/pass1.txt" no-pymalloc imports 2)" -le "$(median "$WORK/pass1.txt" small-pools imports 2)" ]
    then taken=${taken/ small-pools/}; else taken=${taken/ no-pymalloc/}; fi;;
esac
taken=${taken# }
log "minimal = ${taken:-nothing but default}"
for v in $taken; do
    CONF[minimal]="${CONF[minimal]}${CONF[$v]:+ ${CONF[$v]}}"
    CFL[minimal]="${CFL[minimal]}${CFL[$v]:+ ${CFL[$v]}}"
    LDF[minimal]="${LDF[minimal]}${LDF[$v]:+ ${LDF[$v]}}"
    [ -n "${CCX[$v]}" ] && CCX[minimal]=${CCX[$v]}  # one variant only sets it
    [ "${TREE[$v]}" = "$SMALLSRC" ] && TREE[minimal]=$SMALLSRC
done
CONF[minimal]=${CONF[minimal]# }; CFL[minimal]=${CFL[minimal]# }; LDF[minimal]=${LDF[minimal]# }
build minimal

log "pass 2: everything"
ALL="debian $VARIANTS minimal"
# shellcheck disable=SC2086 # a list of names
measure_all "$WORK/pass2.txt" $ALL

# ---------------------------------------------------------------- 5. the report
{
    for v in $ALL; do
        if [ "$v" = debian ]; then
            desc="Debian's $DEBIAN_PY ($(dpkg-query -W -f='${Version}' python3.11))"; secs=""
        else desc=$(describe "$v"); secs=${BUILDSECS[$v]}; fi
        echo "$v|$desc|$secs|$(file -b "$(readlink -f "$(binary_of "$v")")" | cut -d, -f1)"
    done
} > "$WORK/variants.txt"

/usr/bin/python3 - "$WORK" "$REPORT" "$SRCVER" "$NPATCHES" "$RUNS" "$SETTLE" "$THRESH" "$taken" \
    "$BARE" "$IMPORTS" <<'PYEOF'
import os, platform, statistics, subprocess, sys, time
work, report, srcver, npatches, runs, settle, thresh, taken, bare, imports = sys.argv[1:]
thresh = int(thresh)
cols = ["rss", "pd", "heap", "anon", "bin", "ext", "libs", "other"]
data = {}
for line in open(os.path.join(work, "pass2.txt")):
    f = line.split()
    data.setdefault((f[0], f[1]), []).append([int(x) for x in f[3:]])
med = {k: [int(statistics.median(r[i] for r in v)) for i in range(len(cols))]
       for k, v in data.items()}
rng = {k: (min(r[1] for r in v), max(r[1] for r in v)) for k, v in data.items()}
variants = [l.rstrip("\n").split("|") for l in open(os.path.join(work, "variants.txt"))]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))
P = lambda k, c: med[k][cols.index(c)]

out = []
w = out.append
w("# CPython's own build options for a smaller core")
w("")
w(f"`bench/cpython_core_bench.sh` on {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
  f"{cpu}, {os.cpu_count()} cores, {int(mem) // 1024} MiB, kernel {platform.release()}, "
  f"gcc {subprocess.run(['gcc', '-dumpfullversion'], capture_output=True, text=True).stdout.strip()}. "
  f"Source: `apt-get source python3.11={srcver}` (Debian's {npatches} patches applied by dpkg-source; "
  f"the installed version's source first, then the newest the mirror serves), "
  f"each variant configured and built out of tree with plain `configure` + `make -j2` "
  f"(no PGO, no LTO; gcc's defaults: `-O3`, PIE), run as the build tree's `./python`. "
  f"kB from /proc/PID/smaps_rollup and /proc/PID/smaps after {settle} s idle, "
  f"medians of {runs} runs, the binaries in turn.")
w("")
w("| variant | how | build (s, wall, with waits for the lock) | binary |")
w("|---|---|---|---|")
for v, desc, secs, kind in variants:
    w(f"| {v} | `{desc}` | {secs or '-'} | {kind} |")
w("")
w(f"`minimal` = the single options that lowered the median Private_Dirty with the imports by "
  f"at least {thresh} kB against `default` in a first pass (and did not raise it bare by as much): "
  f"{taken or 'none'}.")
w("")
w("Columns: **heap** = `[heap]` (glibc malloc's brk heap); **anon** = anonymous mappings "
  "(pymalloc's arenas, glibc's mmap'd blocks, and the .bss of shared objects, which the kernel merges "
  "with arenas placed next to them); **binary** = the python executable's own "
  "mappings (.data, relocated .data.rel.ro/GOT, and its .bss); **ext .so** = the file-backed mappings of Python extension "
  "modules loaded from `build/lib.*` (ours) or lib-dynload (Debian's); **libs** = libc, libm, "
  "ld.so and other shared libraries; the rest (stack, vvar) is in Private_Dirty but not in a column. "
  "Our builds load `_socket`, `select`, `fcntl`, `_struct`, `_json`, `math`, "
  "`_posixsubprocess`... as shared objects; Debian's python3.11 has most of them built in "
  "(Modules/Setup), so it maps fewer .so files. Their Private_Dirty is counted in the total, "
  "as smaps_rollup does.")
for case, code in (("bare", bare), ("imports", imports)):
    w("")
    w(f"## {case}: `python -S -I -c \"{code.replace('60', 'N')}\"`")
    w("")
    w("| variant | Rss | Private_Dirty (min-max) | heap | anon (arenas) | binary .data/.bss | ext .so | libs | Private_Dirty vs Debian | vs default |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for v, *_ in variants:
        k = (v, case)
        lo, hi = rng[k]
        w(f"| {v} | {P(k,'rss')} | {P(k,'pd')} ({lo}-{hi}) | {P(k,'heap')} | {P(k,'anon')} | "
          f"{P(k,'bin')} | {P(k,'ext')} | {P(k,'libs')} | {P(k,'pd') - P(('debian', case),'pd'):+d} | "
          f"{P(k,'pd') - P(('default', case),'pd'):+d} |")
w("")
w("## What it means")
w("")
d = lambda v, c, col="pd": P((v, c), col) - P(("default", c), col)
singles = [v for v, *_ in variants if v not in ("debian", "default", "minimal")]
fmt = lambda vs: ", ".join(f"`{v}` {d(v,'bare'):+d} bare / {d(v,'imports'):+d} imports" for v in vs) or "none"
w(f"- Lower Private_Dirty than `default` (kB): "
  f"{fmt([v for v in singles if d(v, 'imports') <= -thresh])}.")
w(f"- Nothing measurable (within {thresh} kB): "
  f"{fmt([v for v in singles if -thresh < d(v, 'imports') < thresh])}"
  + ("; `no-pymalloc` moves the arenas into the brk heap "
     f"(heap {d('no-pymalloc','imports','heap'):+d}, anon {d('no-pymalloc','imports','anon'):+d})"
     if "no-pymalloc" in singles else "") + ".")
up = [v for v in singles if d(v, "imports") >= thresh]
if up:
    w(f"- Higher: {fmt(up)}.")
w(f"- Where it comes from: `minimal` {d('minimal','bare'):+d} bare / {d('minimal','imports'):+d} imports "
  f"against `default`: executable's data {d('minimal','imports','bin'):+d} (a non-PIE executable has no "
  f"relocated .data.rel.ro/GOT to dirty), heap {d('minimal','imports','heap'):+d}, "
  f"anon {d('minimal','imports','anon'):+d} (C docstrings no longer copied into str objects).")
w(f"- Against Debian's python3.11 (non-PIE, PGO+LTO, most extension modules built in): `default` "
  f"{P(('default','bare'),'pd') - P(('debian','bare'),'pd'):+d} bare / "
  f"{P(('default','imports'),'pd') - P(('debian','imports'),'pd'):+d} imports, `minimal` "
  f"{P(('minimal','bare'),'pd') - P(('debian','bare'),'pd'):+d} / "
  f"{P(('minimal','imports'),'pd') - P(('debian','imports'),'pd'):+d}: a core of our own built with "
  f"these options "
  + (f"saves at most {best} kB over Debian's." if (best := max(P(('debian', c), 'pd') - P(('minimal', c), 'pd') for c in ('bare', 'imports'))) > 0
     else "saves nothing over Debian's."))
w("")
w("Considered and not built: `--disable-test-modules`, `--without-static-libpython`, "
  "`--with-lto`, `-Os` change the size on disk or clean text pages, not private dirty memory of "
  "an idle process; `--enable-shared` adds relocations (more dirty pages), not fewer.")
w("")
w("Rerun: `bench/cpython_core_bench.sh` (as root; `RUNS=5 SETTLE=2 JOBS=2` by default; "
  "builds in build/tmp/cpython-core are reused while their options are unchanged).")
open(report, "w").write("\n".join(out) + "\n")
PYEOF
log "wrote $REPORT"
