# shellcheck shell=bash
# shellcheck disable=SC2154 # server, pid_file, ...: set by the script that sources this
# Sourced by kafka.sh and registry.sh: messages, the run directory, the pid of the server that
# runs from it, waiting for it to answer, stopping it, and the command dispatch.
#
# The script sets, before it calls these:
#   server        what it runs, in messages ("broker", "registry")
#   pid_file      the pid file's name in the run directory; log_file likewise
#   dir_var       the variable naming the run directory (KAFKA_DIR, REGISTRY_DIR)
#   stop_timeout  seconds between SIGTERM and SIGKILL
#   commands      the commands main accepts besides start, stop and help
# and defines server_pid DIR (prints the pid of the server of DIR if it runs, see owned_pid),
# server_ready (whether it answers) and start.

prog=${0##*/}
temp_marker=.conveyor-temp-dir

log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { log "$*"; exit 1; }
# The script's header comment, down to its `set -euo pipefail`.
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2; }

numbers() { # VAR...: each must hold a non-negative integer
    local v
    for v; do
        [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number, not '${!v}'"
    done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# owned_pid FILE PATTERN: prints the pid in FILE if that process runs (not a zombie) and its
# command line holds PATTERN: never signal a recycled pid.
owned_pid() {
    local file=$1 pattern=$2 pid
    [[ -f $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern" || return 1
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
    echo "$pid"
}

# signal_group SIGNAL PID: the server leads its own process group (setsid); signal all of it.
signal_group() { kill "-$1" -- "-$2" 2>/dev/null || kill "-$1" "$2" 2>/dev/null || true; }

# open_run_dir NAME: run_dir is the directory $dir_var names (created), else a fresh temporary
# one (made_temp=1, removed by stop). Dies if a server already runs from it.
open_run_dir() {
    made_temp=0
    if [[ -n ${!dir_var:-} ]]; then
        mkdir -p "${!dir_var}"
        run_dir=$(cd "${!dir_var}" && pwd)
    else
        run_dir=$(mktemp -d "${TMPDIR:-/tmp}/conveyor-$1.XXXXXX")
        made_temp=1
        touch "$run_dir/$temp_marker"
    fi
    local pid
    if pid=$(server_pid "$run_dir"); then
        die "a $server already runs from $run_dir (pid $pid)"
    fi
}

start_failed() { # $1: message; kills what start left and removes a temporary run directory
    log "$1"
    if [[ -f $run_dir/$log_file ]]; then
        log "last lines of $run_dir/$log_file:"
        tail -n 40 "$run_dir/$log_file" >&2
    fi
    local pid
    if pid=$(server_pid "$run_dir"); then
        signal_group KILL "$pid"
        wait "$pid" 2>/dev/null || true
    fi
    rm -f "$run_dir/$pid_file"
    if ((made_temp)); then rm -rf "$run_dir"; fi
    exit 1
}

# wait_ready TIMEOUT: until the server of run_dir answers; start_failed if it exits first or
# does not answer within TIMEOUT seconds.
wait_ready() {
    local deadline=$((SECONDS + $1))
    until [[ -s $run_dir/$pid_file ]] && server_pid "$run_dir" >/dev/null && server_ready; do
        if [[ -s $run_dir/$pid_file ]] && ! server_pid "$run_dir" >/dev/null; then
            start_failed "the $server exited during start-up"
        fi
        ((SECONDS < deadline)) || start_failed "the $server did not answer within ${1}s"
        sleep 0.5
    done
}

wait_gone() { # DIR SECONDS
    local deadline=$((SECONDS + $2))
    while server_pid "$1" >/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
}

# stop [DIR]: SIGTERM to the server of DIR (default $dir_var), SIGKILL after stop_timeout
# seconds; a temporary run directory is removed.
stop() {
    local dir=${1:-${!dir_var:-}} pid
    [[ -n $dir ]] || die "stop: no run directory (set $dir_var or pass it)"
    if [[ ! -d $dir ]]; then
        log "nothing to stop: $dir does not exist"
        return 0
    fi
    dir=$(cd "$dir" && pwd)
    if pid=$(server_pid "$dir"); then
        signal_group TERM "$pid"
        wait_gone "$dir" "$stop_timeout"
        if server_pid "$dir" >/dev/null; then
            log "$server (pid $pid) still running after ${stop_timeout}s: SIGKILL"
            signal_group KILL "$pid"
            wait_gone "$dir" 10
            server_pid "$dir" >/dev/null && die "could not stop pid $pid"
        fi
        log "stopped the $server of $dir"
    fi
    rm -f "$dir/$pid_file"
    if [[ -f $dir/$temp_marker ]]; then rm -rf "$dir"; fi
}

# main "$@": start (no argument), stop [DIR], help, or one of commands with its arguments.
main() {
    (($# >= 1)) || usage
    local cmd=$1
    shift
    case $cmd in
        start) (($# == 0)) || usage; start ;;
        stop) (($# <= 1)) || usage; stop "$@" ;;
        -h | --help | help) usage ;;
        *)
            [[ " ${commands[*]} " == *" $cmd "* ]] || usage
            "$cmd" "$@"
            ;;
    esac
}
