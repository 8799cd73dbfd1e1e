#!/usr/bin/env bash
# slurm-local.sh — a real single-node Slurm cluster for emotau's tests and CI.
#
#   scripts/slurm-local.sh up     DIR   install if needed, configure, start, wait until the node is usable
#   scripts/slurm-local.sh down   DIR   cancel jobs, stop the daemons (and munged if we started it)
#   scripts/slurm-local.sh status DIR   print the state; exit 0 when up, 1 otherwise
#
# Must run as root (Debian/Ubuntu with apt; no systemd needed). Everything of the cluster lives in DIR:
#   DIR/slurm.conf, DIR/gres.conf   configuration (the system's /etc/slurm is never touched)
#   DIR/state, DIR/spool, DIR/log   slurmctld state, slurmd spool, daemon logs (+ log/jobcomp.log)
#   DIR/run                         pid files, lock, settings of the running cluster
#   DIR/bin/<slurm command>         wrappers that run the real client inside the cluster's network namespace
#   DIR/env.sh                      `source DIR/env.sh` -> SLURM_CONF, SLURM_NS, slurm_ns(), PATH=DIR/bin:...
#
# Network isolation (project rule: servers listen on 127.0.0.1 only). slurmctld/slurmd have no
# bind-address option and listen on 0.0.0.0, so by default (SLURM_LOCAL_NET=netns) they run in a private
# network namespace that only has a loopback interface: nothing is reachable from outside the machine,
# nor from the host's own network stack. Consequence: every client command must enter that namespace
# (use DIR/bin on PATH, or "$SLURM_NS cmd", or run the whole test process under $SLURM_NS), and job
# processes see the namespace's own 127.0.0.1, NOT the host's — a server that a job must reach has to run
# inside the namespace too (or talk over a unix socket: the file system is shared).
# SLURM_LOCAL_NET=host instead runs the daemons on the host network with
# CommunicationParameters=NoCtldInAddrAny,NoInAddrAny, so that slurmctld/slurmd bind their configured address
# 127.0.0.1 rather than 0.0.0.0 (srun binds the address the host name resolves to). Jobs then reach servers
# on the host's 127.0.0.1 and no namespace is needed, but the default ports 6817/6818 must be free.
#
# Tunables (environment variables read by `up`):
#   SLURM_LOCAL_NET=netns|host      see above (default netns)
#   SLURM_LOCAL_NETNS=NAME          namespace name (default emotau-slurm-<hash of DIR>)
#   SLURM_LOCAL_CPUS=N              CPUs announced for the node (default: nproc; may exceed it)
#   SLURM_LOCAL_MEM_MB=N            RealMemory (default: 90% of MemTotal)
#   SLURM_LOCAL_GPUS=N              fake GPUs as GRES gpu:fake:N, sets CUDA_VISIBLE_DEVICES (default 2; 0 = none)
#   SLURM_LOCAL_MIN_JOB_AGE=S       seconds a finished job stays visible to squeue/scontrol (default 300)
#   SLURM_LOCAL_TIMEOUT=S           how long `up` waits for the node to become usable (default 60)
#   SLURM_LOCAL_CTLD_PORT / SLURM_LOCAL_SLURMD_PORT   (default 6817 / 6818)
#
# No accounting (slurmdbd) is configured, so `sacct` fails ("Slurm accounting storage is disabled", exit 1).
# Learn job / array-task states from slurmctld's memory instead, while a job is younger than MinJobAge
# after it ended (afterwards both commands fail with "Invalid job id specified"):
#   squeue -h -r -t all -j JOBID -o '%K|%T|%r'    one line per array task: index|STATE|reason
#                                                 (-r expands pending 12_[3-7]; -t all includes finished)
#   scontrol show job -o JOBID_TASK               JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0
set -euo pipefail

PROG=${0##*/}
MUNGE_MARK=/run/munge/started-by-slurm-local
SLURM_CLIENT_CMDS=(sbatch srun salloc squeue scancel scontrol sinfo sacct sstat sattach sprio sshare sdiag strigger sbcast)

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------------------------------------------------
# Installation
# ---------------------------------------------------------------------------------------------------------

have_slurm() { command -v slurmctld && command -v slurmd && command -v sbatch && command -v munged; } >/dev/null 2>&1

apt_install() {  # apt_install PKG... ; quiet, non-interactive
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300 "$@" </dev/null
}

install_slurm() {
    have_slurm && return 0
    command -v apt-get >/dev/null || die "slurmctld is not installed and apt-get is not available"
    log "installing Slurm + munge with apt-get (one-off, ~10 s)"
    # The packages' postinst scripts try to start the services (munge, slurmctld, slurmd). Without a
    # slurm.conf in /etc that fails, and munged would be started outside our control; forbid service
    # starts for the duration of the install unless the system already has a policy.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT   # also when interrupted
    fi
    local rc=0 out
    out=$(mktemp)
    {
        # Minimal set first (8 packages); the update is only needed when the package lists are missing/stale.
        apt_install --no-install-recommends slurmctld slurmd slurm-client munge ||
            { apt-get update -qq && apt_install --no-install-recommends slurmctld slurmd slurm-client munge; } ||
            apt_install slurm-wlm munge   # fall back to the meta package (43 packages, all plugins)
    } >"$out" 2>&1 || rc=$?
    [[ $added_policy == 1 ]] && { rm -f "$policy"; trap - EXIT; }
    if [[ $rc != 0 ]] || ! have_slurm; then
        tail -n 30 "$out" >&2; rm -f "$out"
        die "installing Slurm failed"
    fi
    rm -f "$out"
    log "installed $(slurmctld -V)"
}

# ---------------------------------------------------------------------------------------------------------
# Process helpers (no pgrep -f: we only ever touch processes that carry our marker or our pid files)
# ---------------------------------------------------------------------------------------------------------

# Every daemon we start gets SLURM_LOCAL_DIR=$DIR in its environment (pid files can be stale or reused).
has_marker() {  # has_marker PID -> true if PID runs with SLURM_LOCAL_DIR=$DIR
    { tr '\0' '\n' <"/proc/$1/environ"; } 2>/dev/null | grep -qxF "SLURM_LOCAL_DIR=$DIR"
}

alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

daemon_pid() {  # daemon_pid slurmctld|slurmd -> prints pid if that daemon of THIS cluster runs
    local f=$DIR/run/$1.pid pid
    [[ -r $f ]] || return 1
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && has_marker "$pid" && echo "$pid"
}

pids_by_comm() {  # pids_by_comm NAME -> all pids whose /proc/PID/comm is NAME
    local p c
    for p in /proc/[0-9]*; do
        c=$(cat "$p/comm" 2>/dev/null) || continue
        [[ $c == "$1" ]] && echo "${p#/proc/}"
    done
    return 0
}

descendants() {  # descendants PID... -> the given pids and all their descendants
    local -A children=()
    local p pp stat
    for p in /proc/[0-9]*; do
        stat=$(cat "$p/stat" 2>/dev/null) || continue
        stat=${stat##*) }          # drop "pid (comm) " — comm may contain spaces
        pp=${stat#* }; pp=${pp%% *}
        children[$pp]+=" ${p#/proc/}"
    done
    local -a todo=("$@") out=()
    while ((${#todo[@]})); do
        p=${todo[0]}; todo=("${todo[@]:1}")
        out+=("$p")
        # shellcheck disable=SC2206
        [[ -n ${children[$p]:-} ]] && todo+=(${children[$p]})
    done
    printf '%s\n' "${out[@]}"
}

wait_gone() {  # wait_gone SECONDS PID... -> true once none of the pids is alive
    local deadline=$((SECONDS + $1)) p any; shift
    while :; do
        any=0
        for p in "$@"; do alive "$p" && any=1; done
        [[ $any == 0 ]] && return 0
        ((SECONDS >= deadline)) && return 1
        sleep 0.1
    done
}

stop_pids() {  # stop_pids SECONDS PID... : SIGTERM, wait, then SIGKILL the survivors
    local t=$1; shift
    (($#)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    wait_gone "$t" "$@" && return 0
    log "still alive after ${t}s, sending SIGKILL: $*"
    kill -KILL "$@" 2>/dev/null || true
    wait_gone 5 "$@"
}

# ---------------------------------------------------------------------------------------------------------
# Per-cluster settings
# ---------------------------------------------------------------------------------------------------------

setup_vars() {
    [[ -n ${1:-} ]] || usage
    mkdir -p "$1"
    DIR=$(cd "$1" && pwd -P)
    [[ $DIR =~ ^[A-Za-z0-9_./+-]+$ ]] || die "DIR must be a plain path (letters, digits, _ . / + -): '$DIR'"
    CONF=$DIR/slurm.conf
    SETTINGS=$DIR/run/settings   # NET/NETNS of the running cluster, so down/status need no env vars
    mkdir -p "$DIR/run"
    SETTINGS_LOADED=0
    if [[ -r $SETTINGS ]]; then
        # shellcheck disable=SC1090
        source "$SETTINGS"
        SETTINGS_LOADED=1
    else
        NET=${SLURM_LOCAL_NET:-netns}
        NETNS=${SLURM_LOCAL_NETNS:-emotau-slurm-$(printf %s "$DIR" | sha1sum | cut -c1-8)}
    fi
    [[ $NET == netns || $NET == host ]] || die "SLURM_LOCAL_NET must be netns or host, not '$NET'"
    [[ $NETNS =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad network namespace name '$NETNS'"
    if [[ $NET == netns ]]; then
        NS_PATH=/run/netns/$NETNS
        NS=(nsenter "--net=$NS_PATH" --)
    else
        NS_PATH=
        NS=()
    fi
}

in_ns() { "${NS[@]}" env "SLURM_CONF=$CONF" "$@"; }   # run a command in the cluster's network namespace

# ---------------------------------------------------------------------------------------------------------
# up
# ---------------------------------------------------------------------------------------------------------

setup_netns() {
    [[ $NET == netns ]] || return 0
    if [[ ! -e $NS_PATH ]]; then
        ip netns add "$NETNS" || die "cannot create network namespace $NETNS (try SLURM_LOCAL_NET=host)"
    fi
    ip -n "$NETNS" link set lo up
    # With 127.0.0.1 as the only address, glibc getaddrinfo(AI_ADDRCONFIG) finds no IPv4 address and
    # slurmctld dies with "Address family not supported by protocol": add a second loopback address.
    ip -n "$NETNS" -4 addr show dev lo | grep -q '127\.0\.0\.2/' ||
        ip -n "$NETNS" addr add 127.0.0.2/32 dev lo
}

start_munge() {
    # munged talks over a unix socket (/run/munge/munge.socket.2), which works across network namespaces.
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
    log "starting munged"
    if [[ ! -s /etc/munge/munge.key ]]; then
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
        else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
        chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 755 /run/munge
    # --force: replace a stale socket/lock left behind by a munged that was killed.
    runuser -u munge -- /usr/sbin/munged --force 9>&-
    local i
    for ((i = 0; i < 50; i++)); do
        if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
            # Remember (machine-wide, /run is a tmpfs) that we started it: the last `down` stops it.
            cat /run/munge/munged.pid >"$MUNGE_MARK"
            return 0
        fi
        sleep 0.1
    done
    die "munged did not come up (see /var/log/munge/munged.log)"
}

write_config() {
    local cpus mem_mb gpus min_age defmem gres_node=""
    cpus=${SLURM_LOCAL_CPUS:-$(nproc)}
    mem_mb=${SLURM_LOCAL_MEM_MB:-$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)}
    gpus=${SLURM_LOCAL_GPUS:-2}
    min_age=${SLURM_LOCAL_MIN_JOB_AGE:-300}
    local v
    for v in "$cpus" "$mem_mb" "$gpus" "$min_age" "${SLURM_LOCAL_CTLD_PORT:-6817}" "${SLURM_LOCAL_SLURMD_PORT:-6818}"; do
        [[ $v =~ ^[0-9]+$ ]] || die "SLURM_LOCAL_* settings must be non-negative integers, got '$v'"
    done
    ((cpus > 0)) || die "SLURM_LOCAL_CPUS must be at least 1"
    # Without DefMemPerCPU a job is given ALL the node's memory, so array tasks run one at a time.
    # RealMemory/CPUs lets every CPU run a task while keeping memory requests meaningful.
    defmem=$((mem_mb / cpus))
    ((gpus > 0)) && gres_node=" Gres=gpu:fake:$gpus"

    cat >"$CONF" <<EOF
# Generated by $PROG for a single-node test cluster; rewritten by every \`up\` that starts slurmctld.
ClusterName=emotaulocal
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=${SLURM_LOCAL_CTLD_PORT:-6817}
SlurmdPort=${SLURM_LOCAL_SLURMD_PORT:-6818}
$([[ $NET == host ]] && echo "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny   # bind 127.0.0.1, not 0.0.0.0")
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups, no accounting daemon: sacct does not work (use squeue/scontrol, see the script header).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# One line per finished job (JobState, ExitCode, ...) for debugging; real clusters rarely expose this.
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
MailProg=/bin/true
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$defmem
# Accept CPUs/RealMemory from this file even where they differ from the hardware (SLURM_LOCAL_CPUS > nproc).
SlurmdParameters=config_overrides
ReturnToService=2
# Seconds a finished job stays in slurmctld's memory (squeue -t all, scontrol show job).
MinJobAge=$min_age
SchedulerParameters=sched_min_interval=0,batch_sched_delay=0
${gres_node:+GresTypes=gpu}
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb$gres_node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    if ((gpus > 0)); then
        # Fake GPUs: any distinct existing device files will do; jobs get CUDA_VISIBLE_DEVICES=0,1,...
        echo "NodeName=localhost Name=gpu Type=fake File=/dev/tty[0-$((gpus - 1))]" >"$DIR/gres.conf"
    else
        rm -f "$DIR/gres.conf"
    fi
}

write_client_files() {
    # DIR/bin/<cmd>: run the real client with our SLURM_CONF, entering the namespace unless already in it
    # (jobs run inside it, so a job calling srun/sbatch must not nsenter again).
    mkdir -p "$DIR/bin"
    local c real
    for c in "${SLURM_CLIENT_CMDS[@]}"; do
        real=$(PATH=${PATH//"$DIR/bin:"/} command -v "$c") || continue
        if [[ $NET == netns ]]; then
            cat >"$DIR/bin/$c" <<EOF
#!/bin/sh
# generated by $PROG: $c for the test cluster in $DIR
export SLURM_CONF='$CONF'
if [ "\$(stat -L -c %i /proc/self/ns/net)" = "\$(stat -L -c %i '$NS_PATH' 2>/dev/null)" ]; then
    exec '$real' "\$@"
fi
exec nsenter --net='$NS_PATH' -- '$real' "\$@"
EOF
        else
            printf '#!/bin/sh\n# generated by %s\nexport SLURM_CONF=%q\nexec %q "$@"\n' "$PROG" "$CONF" "$real" >"$DIR/bin/$c"
        fi
        chmod 755 "$DIR/bin/$c"
    done

    local ns_cmd=""
    [[ $NET == netns ]] && ns_cmd="nsenter --net=$NS_PATH"
    cat >"$DIR/env.sh" <<EOF
# Generated by $PROG — \`source\` me to use the local test cluster in $DIR.
export SLURM_LOCAL_DIR='$DIR'
export SLURM_CONF='$CONF'
# Network namespace of the daemons ('' when they run on the host network).
export SLURM_NETNS='$([[ $NET == netns ]] && echo "$NETNS")'
# Prefix for a command that must reach the cluster (or a server the jobs talk to): \$SLURM_NS cmd args
export SLURM_NS='$ns_cmd'
slurm_ns() { if [ -n "\$SLURM_NS" ]; then \$SLURM_NS "\$@"; else "\$@"; fi; }
# Wrappers named like the Slurm clients (sbatch, squeue, scontrol, ...) that do the above by themselves.
case ":\$PATH:" in *':$DIR/bin:'*) ;; *) export PATH='$DIR/bin':"\$PATH" ;; esac
EOF
}

node_state() { in_ns sinfo -h -N -n localhost -o '%T' 2>/dev/null | head -n1; }

show_logs() {
    local f
    for f in "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log"; do
        [[ -r $f ]] || continue
        echo "----- tail $f" >&2
        tail -n 20 "$f" >&2
    done
    echo "----- sinfo -R" >&2
    in_ns sinfo -R >&2 2>&1 || true
    log "whatever did start is left running for inspection; \`$PROG down $DIR\` cleans up"
}

wait_ready() {
    local timeout=${SLURM_LOCAL_TIMEOUT:-60} deadline st="" resumed=0
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        st=$(node_state || true)
        case $st in
            idle | mixed | allocated | completing) return 0 ;;
            down* | drain* | fail* | inval*)
                # A node left down/drained by an earlier run (state is kept in DIR/state): resume it once.
                if [[ $resumed == 0 ]] && daemon_pid slurmd >/dev/null; then
                    in_ns scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
                    resumed=1
                fi ;;
        esac
        daemon_pid slurmctld >/dev/null || { show_logs; die "slurmctld exited during start-up"; }
        daemon_pid slurmd >/dev/null || { show_logs; die "slurmd exited during start-up"; }
        sleep 0.2
    done
    show_logs
    die "node not usable after ${timeout}s (last sinfo state: '${st:-no answer}')"
}

cmd_up() {
    [[ $EUID == 0 ]] || die "must run as root"
    exec 9>"$DIR/run/lock"; flock -w 300 9 || die "another $PROG holds $DIR/run/lock"
    install_slurm

    local ctld slurmd_pid t0=$SECONDS
    ctld=$(daemon_pid slurmctld || true)
    slurmd_pid=$(daemon_pid slurmd || true)
    if [[ -n $ctld && -n $slurmd_pid ]] && [[ $(node_state || true) =~ ^(idle|mixed|allocated|completing)$ ]]; then
        write_client_files
        log "already up: $DIR (source $DIR/env.sh)"
        return 0
    fi

    mkdir -p "$DIR"/{state,spool,log}
    printf 'NET=%q\nNETNS=%q\n' "$NET" "$NETNS" >"$SETTINGS"
    setup_netns
    start_munge
    [[ -z $ctld ]] && write_config   # never rewrite the config under a running slurmctld
    write_client_files

    if [[ $NET == host ]]; then
        local port
        for port in "${SLURM_LOCAL_CTLD_PORT:-6817}" "${SLURM_LOCAL_SLURMD_PORT:-6818}"; do
            if [[ -z $ctld ]] && ss -Htln "sport = :$port" | grep -q .; then
                die "port $port is already in use (another Slurm?); set SLURM_LOCAL_CTLD_PORT/SLURM_LOCAL_SLURMD_PORT"
            fi
        done
    fi

    # Both daemons fork into the background and write their pid files; -i: tolerate damaged state files.
    # "9>&-": the daemons must not inherit the lock fd, or they would hold the lock for their lifetime.
    if [[ -z $ctld ]]; then
        "${NS[@]}" env SLURM_LOCAL_DIR="$DIR" SLURM_CONF="$CONF" slurmctld -i -f "$CONF" 9>&- ||
            { show_logs; die "slurmctld failed to start"; }
    fi
    if [[ -z $slurmd_pid ]]; then
        "${NS[@]}" env SLURM_LOCAL_DIR="$DIR" SLURM_CONF="$CONF" slurmd -f "$CONF" -N localhost 9>&- ||
            { show_logs; die "slurmd failed to start"; }
    fi
    local i
    for ((i = 0; i < 50; i++)); do   # pid files appear shortly after the fork
        daemon_pid slurmctld >/dev/null && daemon_pid slurmd >/dev/null && break
        sleep 0.1
    done
    wait_ready
    log "up in $((SECONDS - t0))s: $DIR ($([[ $NET == netns ]] && echo "network namespace $NETNS" || echo "host network, 127.0.0.1")); source $DIR/env.sh"
}

# ---------------------------------------------------------------------------------------------------------
# down
# ---------------------------------------------------------------------------------------------------------

cmd_down() {
    [[ $EUID == 0 ]] || die "must run as root"
    exec 9>"$DIR/run/lock"; flock -w 120 9 || die "another $PROG holds $DIR/run/lock"

    local ctld slurmd_pid
    ctld=$(daemon_pid slurmctld || true)
    slurmd_pid=$(daemon_pid slurmd || true)

    # 1. Cancel what is still queued or running, so no job process outlives the cluster.
    if [[ -n $ctld ]]; then
        local jobs deadline
        jobs=$(in_ns squeue -h -o '%F' 2>/dev/null | sort -u | tr '\n' ' ' || true)
        if [[ -n ${jobs// /} ]]; then
            log "cancelling jobs: $jobs"
            # shellcheck disable=SC2086
            in_ns scancel $jobs 2>/dev/null || true
            deadline=$((SECONDS + 20))
            while ((SECONDS < deadline)) && [[ -n $(in_ns squeue -h -t PD,R,CG,S -o %i 2>/dev/null) ]]; do sleep 0.2; done
        fi
    fi

    # 2. The daemons. slurmctld saves its state on SIGTERM (takes ~1-4 s).
    local -a pids=()
    [[ -n $slurmd_pid ]] && pids+=("$slurmd_pid")
    [[ -n $ctld ]] && pids+=("$ctld")
    stop_pids 30 "${pids[@]}"

    # 3. Left-over job steps and their job processes. slurmstepd overwrites its environment (process
    #    title), so recognise ours by the working directory slurmd gives it: the log directory.
    local -a steps=() left=()
    local p cwd
    for p in $(pids_by_comm slurmstepd); do
        cwd=$(readlink "/proc/$p/cwd" 2>/dev/null) || continue
        [[ $cwd == "$DIR" || $cwd == "$DIR"/* ]] && steps+=("$p")
    done
    if ((${#steps[@]})); then
        mapfile -t left < <(descendants "${steps[@]}")
        log "killing left-over job processes: ${left[*]}"
        stop_pids 10 "${left[@]}"
    fi

    # 4. munged, only if this script started it (any DIR) and no Slurm daemon on the machine still needs it.
    if [[ -r $MUNGE_MARK && -z $(pids_by_comm slurmctld; pids_by_comm slurmd; pids_by_comm slurmstepd) ]]; then
        local mpid
        mpid=$(<"$MUNGE_MARK")
        if alive "$mpid" && [[ $(cat "/proc/$mpid/comm" 2>/dev/null) == munged ]]; then
            stop_pids 10 "$mpid"
        fi
        rm -f "$MUNGE_MARK"
    fi

    # 5. The network namespace, if `up` created it for this DIR (a process still inside, e.g. a test run
    #    under $SLURM_NS, keeps the namespace itself alive, but it is no longer reachable by name).
    if [[ $SETTINGS_LOADED == 1 && $NET == netns && -e $NS_PATH ]]; then
        ip netns del "$NETNS" || log "warning: could not delete network namespace $NETNS"
    fi
    rm -f "$SETTINGS" "$DIR/run/slurmctld.pid" "$DIR/run/slurmd.pid"
    log "down: $DIR"
}

# ---------------------------------------------------------------------------------------------------------
# status
# ---------------------------------------------------------------------------------------------------------

cmd_status() {
    local ctld slurmd_pid st="" up=1
    ctld=$(daemon_pid slurmctld || true)
    slurmd_pid=$(daemon_pid slurmd || true)
    echo "dir:       $DIR"
    if [[ $NET == netns ]]; then
        echo "network:   namespace $NETNS ($([[ -e $NS_PATH ]] && echo present || echo absent))"
    else
        echo "network:   host (127.0.0.1)"
    fi
    echo "slurmctld: $([[ -n $ctld ]] && echo "running (pid $ctld)" || echo "not running")"
    echo "slurmd:    $([[ -n $slurmd_pid ]] && echo "running (pid $slurmd_pid)" || echo "not running")"
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then echo "munged:    running"
    else echo "munged:    not running"; up=0; fi
    [[ -n $ctld && -n $slurmd_pid ]] || up=0
    if [[ $up == 1 ]]; then
        st=$(node_state || true)
        echo "node:      localhost ${st:-no answer}"
        [[ $st =~ ^(idle|mixed|allocated|completing)$ ]] || up=0
    fi
    if [[ $up == 1 ]]; then echo "UP (source $DIR/env.sh)"; return 0; fi
    echo "DOWN"
    return 1
}

# ---------------------------------------------------------------------------------------------------------

main() {
    (($# == 2)) || usage
    case $1 in
        up | down | status) ;;
        *) usage ;;
    esac
    if [[ $1 == status && ! -d $2 ]]; then echo "DOWN ($2 does not exist)"; return 1; fi
    setup_vars "$2"
    "cmd_$1"
}

main "$@"
