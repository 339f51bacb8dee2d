#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that take untrusted input (docs/fuzzing.md).
# Builds the libFuzzer harnesses of tests/fuzz/ into build-fuzz/ (clang, ASan, UBSan, LSan),
# runs each for SECONDS (default 60) on a scratch copy of its seed corpus, and prints one line
# per harness. Exits 1 if any harness crashed, leaked, hung or ran out of memory; the input
# that did it is left under build-fuzz/crashes/<harness>/ and its path printed.
#   tests/fuzz/run.sh [SECONDS]
# Environment: FUZZ_CC (default clang), FUZZ_BUILD (default build-fuzz), FUZZ_ONLY (harness
# names separated by spaces, default all), FUZZ_ARGS (more libFuzzer options).
set -euo pipefail

cd "$(dirname "$0")/../.."

duration=${1:-60}
if ! [[ $duration =~ ^[0-9]+$ ]] || ((duration < 1)); then
    echo "usage: tests/fuzz/run.sh [SECONDS]" >&2
    exit 2
fi
cc=${FUZZ_CC:-clang}
out=${FUZZ_BUILD:-build-fuzz}
read -r -a harnesses <<<"${FUZZ_ONLY:-avro_decode order_request traceparent canonical}"
read -r -a extra_args <<<"${FUZZ_ARGS:-}"
jobs_max=$(nproc 2>/dev/null || echo 2)
pkgs=(rdkafka avro-c libmicrohttpd jansson libpq libcurl libcrypto)

if ! command -v "$cc" >/dev/null; then
    echo "fuzz: $cc not found (clang with libFuzzer is needed)" >&2
    exit 2
fi
read -r -a pkg_cflags <<<"$(pkg-config --cflags "${pkgs[@]}")"
read -r -a pkg_libs <<<"$(pkg-config --libs "${pkgs[@]}")"

san=("-fsanitize=address,undefined" -fno-sanitize-recover=all)
cflags=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wmissing-prototypes -Wno-unused-parameter
    -g -O1 -pthread -fno-omit-frame-pointer "${san[@]}" -Icommon/include "-I$out/gen"
    "${pkg_cflags[@]}")
libs=("${pkg_libs[@]}" -lm -pthread)

mkdir -p "$out/gen" "$out/obj" "$out/bin"

# Objects are rebuilt when the flags change, or when older than their source or any header.
stamp="$out/flags"
if [[ ! -f $stamp || "$(cat "$stamp")" != "$cc ${cflags[*]}" ]]; then
    rm -rf "$out/obj"
    mkdir -p "$out/obj"
    printf '%s\n' "$cc ${cflags[*]}" >"$stamp"
fi
newest_header=$stamp
for header in common/include/cv/*.h common/src/*_int.h common/src/*/*_int.h services/order/*.h; do
    if [[ $header -nt $newest_header ]]; then
        newest_header=$header
    fi
done

# embed.sh SYMBOL OUT FILE...: regenerates OUT only when its content changes.
embed() {
    local sym=$1 dest=$2
    shift 2
    common/tools/embed.sh "$sym" "$@" >"$dest.tmp"
    if cmp -s "$dest.tmp" "$dest"; then
        rm -f "$dest.tmp"
    else
        mv "$dest.tmp" "$dest"
    fi
}

# Sorted like the Makefile's $(sort $(wildcard ...)): the files of a directory stay together.
export LC_ALL=C
shopt -s nullglob
embed cv_schema_files "$out/gen/schemas_embed.c" schemas/*.avsc schemas/released/*/*.avsc
embed cv_common_migrations "$out/gen/common_migrations.c" common/sql/*.sql
embed cv_service_migrations "$out/gen/order_migrations.c" services/order/sql/*.sql
embed cv_service_seed "$out/gen/order_seed.c" services/order/seed/*.json
embed cv_fuzz_schemas "$out/gen/fuzz_schemas.c" tests/fuzz/schemas/*.avsc
shopt -u nullglob

failed_build=0
# compile SRC OBJ [FLAGS...]: in the background, at most jobs_max at a time.
compile() {
    local src=$1 obj=$2
    shift 2
    if [[ -f $obj && $obj -nt $src && $obj -nt $newest_header && $obj -nt $stamp ]]; then
        return 0
    fi
    while (($(jobs -rp | wc -l) >= jobs_max)); do
        wait -n || failed_build=1
    done
    mkdir -p "$(dirname "$obj")"
    "$cc" "${cflags[@]}" "$@" -c -o "$obj" "$src" &
}

lib_objs=()
for src in common/src/*.c common/src/*/*.c "$out"/gen/schemas_embed.c \
    "$out"/gen/common_migrations.c; do
    obj="$out/obj/$(basename "${src%.c}").o"
    compile "$src" "$obj" -fsanitize=fuzzer-no-link
    lib_objs+=("$obj")
done
compile services/order/store.c "$out/obj/order_store.o" -fsanitize=fuzzer-no-link \
    -Iservices/order
for gen in order_migrations order_seed fuzz_schemas; do
    compile "$out/gen/$gen.c" "$out/obj/$gen.o"
done
while (($(jobs -rp | wc -l) > 0)); do
    wait -n || failed_build=1
done
if ((failed_build)); then
    echo "fuzz: build failed" >&2
    exit 2
fi
rm -f "$out/libconveyor-fuzz.a"
ar rcs "$out/libconveyor-fuzz.a" "${lib_objs[@]}"

for name in "${harnesses[@]}"; do
    extra=()
    case $name in
    avro_decode) extra=("$out/obj/fuzz_schemas.o") ;;
    order_request)
        extra=(-Iservices/order "$out/obj/order_store.o" "$out/obj/order_migrations.o"
            "$out/obj/order_seed.o")
        ;;
    esac
    "$cc" "${cflags[@]}" -Werror -fsanitize=fuzzer -o "$out/bin/fuzz_$name" \
        "tests/fuzz/fuzz_$name.c" "${extra[@]}" "$out/libconveyor-fuzz.a" "${libs[@]}"
done

symbolizer=$(command -v llvm-symbolizer || command -v llvm-symbolizer-14 || true)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${symbolizer:+external_symbolizer_path=$symbolizer}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

status=0
for name in "${harnesses[@]}"; do
    corpus="$out/corpus/$name"
    crashes="$out/crashes/$name"
    log="$out/logs/$name.log"
    rm -rf "$corpus" "$crashes"
    mkdir -p "$corpus" "$crashes" "$out/logs"
    if [[ -d tests/fuzz/corpus/$name ]]; then
        cp -R "tests/fuzz/corpus/$name/." "$corpus/"
    fi
    dict=()
    if [[ -f tests/fuzz/$name.dict ]]; then
        dict=("-dict=tests/fuzz/$name.dict")
    fi
    rc=0
    "$out/bin/fuzz_$name" -max_total_time="$duration" -rss_limit_mb=2048 -timeout=30 \
        -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$crashes/" "${dict[@]}" \
        "${extra_args[@]}" "$corpus" >"$log" 2>&1 || rc=$?

    # A crash on a seed leaves no statistics: the fields stay 0 then.
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [[ -z $execs ]]; then
        execs=$({ grep -o '^#[0-9]*' "$log" || true; } | tail -n 1 | tr -d '#')
    fi
    cov=$({ grep -o 'cov: [0-9]*' "$log" || true; } | tail -n 1 | cut -d' ' -f2)
    inputs=$(find "$corpus" -type f | wc -l)
    found=$(find "$crashes" -type f | wc -l)
    if ((rc != 0 && found == 0)); then
        found=1 # died before writing an input, e.g. at start-up
    fi
    echo "fuzz $name: ${execs:-0} execs, ${cov:-0} coverage, $inputs inputs, $found crashes"
    if ((found > 0)); then
        status=1
        find "$crashes" -type f -printf '  crash file: %p\n'
        echo "  log: $log"
        grep -m 3 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | sed 's/^/  /' || true
    fi
done
exit "$status"
