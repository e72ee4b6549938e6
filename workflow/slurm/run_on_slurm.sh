#!/usr/bin/env bash
# Run the pipeline through a real Slurm (one-node cluster on this machine) and check that it
# writes the same results/ as a local run.
#
#   sudo workflow/slurm/run_on_slurm.sh [--components N] [--extracted DIR] [--keep]
#
# What it does, in order (every step prints a line starting with '==>'):
#   1. installs what is missing, with apt-get: slurm-wlm (slurmctld, slurmd, client commands),
#      slurmdbd, munge, mariadb-server (services are not started by the install);
#   2. writes a one-node cluster into a new temporary folder: this host, its CPUs and memory,
#      its own munge key and socket, its own ports, MariaDB data folder, state and spool folders;
#   3. starts munged, mariadbd, slurmdbd, slurmctld and slurmd from there (in the foreground of
#      a background shell, so their process ids are known exactly) and waits until the node is
#      idle and the cluster is registered in the accounting database;
#   4. runs the pipeline with `snakemake --profile workflow/profiles/slurm` on a clean copy of
#      the tracked files (every job goes through sbatch; status through sacct);
#   5. runs the same pipeline locally (`snakemake --cores`) on another clean copy;
#   6. compares the two results/ folders byte for byte, lists any difference, and prints the
#      Slurm accounting (sacct) of the run and the measured times;
#   7. on exit, also on failure or Ctrl-C, cancels the cluster's jobs and stops exactly the
#      daemons it started (by their process ids), then removes the temporary folder (kept
#      with its logs on failure, or with --keep).
# It never starts, stops or reconfigures a service it did not start: everything lives in the
# temporary folder, on ports found free; the system's /etc/slurm and /etc/munge are not read.
# One path outside it: /run/slurm/conf points to the cluster's configuration while it runs
# (where a "configless" slurmd keeps its copy), because srun inside the jobs runs with
# SLURM_CONF removed; the script stops if that path or /etc/slurm/slurm.conf exists already.
#
# Options:
#   --components N   analyses (connected components of the group "analysis") per Slurm job
#                    (default: the profile's value)
#   --extracted DIR  run on another folder of analyses (config extracted_dir), e.g. many copies
#   --keep           keep the temporary folder (logs, databases, both runs)
#   --cores N        cores of the local run (default: all)
# Exit status: 0 when both runs succeed and results/ are identical, 1 otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
COMPONENTS=""
EXTRACTED=""
KEEP=0
CORES=$(nproc)
while [ $# -gt 0 ]; do
    case "$1" in
        --components) COMPONENTS=$2; shift 2 ;;
        --extracted) EXTRACTED=$(cd "$2" && pwd); shift 2 ;;
        --keep) KEEP=1; shift ;;
        --cores) CORES=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run_on_slurm.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '==> %s\n' "$*"; }
die() { printf 'run_on_slurm.sh: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

[ "$(id -u)" -eq 0 ] || die "needs root (slurmd launches the jobs, apt-get installs the packages); run it with sudo"

SNAKEMAKE=$(command -v snakemake || true)
[ -n "$SNAKEMAKE" ] || [ ! -x "$ROOT/.venv/bin/snakemake" ] || SNAKEMAKE="$ROOT/.venv/bin/snakemake"
[ -n "$SNAKEMAKE" ] || die "snakemake not found: pip install -e '.[pipeline,slurm]' in a venv and activate it"
"$(dirname "$SNAKEMAKE")/python" -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
    || die "snakemake-executor-plugin-slurm is not installed beside $SNAKEMAKE: pip install -e '.[slurm]'"

# ---------------------------------------------------------------------------------------------
# 1. packages
PACKAGES="slurm-wlm slurmdbd munge mariadb-server"
missing=""
for cmd in slurmctld slurmd slurmdbd slurmstepd sbatch sacct sacctmgr munged mungekey mariadbd mariadb-install-db; do
    PATH=$PATH:/usr/sbin command -v "$cmd" >/dev/null || missing="$missing $cmd"
done
if [ -n "$missing" ]; then
    say "installing $PACKAGES (missing:$missing)"
    # Debian starts a package's service on install; a policy-rc.d that says 'no' (removed
    # right after) keeps the install from starting system daemons this script would not own.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy"
    fi
    t0=$(now)
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null \
        || { [ -z "$policy" ] || rm -f "$policy"; die "apt-get install $PACKAGES failed"; }
    [ -z "$policy" ] || rm -f "$policy"
    say "installed in $(elapsed "$t0" "$(now)") s"
fi
export PATH=$PATH:/usr/sbin

# ---------------------------------------------------------------------------------------------
# 2. the cluster's folder and configuration
RUN_CONF=/run/slurm/conf
for f in /etc/slurm/slurm.conf "$RUN_CONF"; do
    [ ! -e "$f" ] && [ ! -L "$f" ] || die "this machine has a Slurm configuration of its own ($f); \
srun inside the jobs would read it instead of the one-node cluster's. Use a machine without one."
done
RUN_SLURM_MADE=0
RUN_CONF_MADE=0
T=$(mktemp -d /tmp/metarepro-slurm.XXXXXX)
chmod 755 "$T"
mkdir -p "$T"/{conf,munge,db,ctld,spool,log,run}
chmod 700 "$T/munge"
PIDS=()      # daemons started here, in start order
NAMES=()
CTLD_PID=""
RUN_PID=""  # snakemake, while it runs
OK=0

cleanup() {
    local status=$?
    set +e
    if [ -n "$RUN_PID" ] && kill -0 "$RUN_PID" 2>/dev/null; then
        # Snakemake cancels its Slurm jobs on SIGINT (SIGTERM would wait for them to finish)
        say "interrupting snakemake (pid $RUN_PID)"
        kill -INT "$RUN_PID"
        for _ in $(seq 300); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$RUN_PID" 2>/dev/null && kill -KILL "$RUN_PID"
        wait "$RUN_PID" 2>/dev/null
    fi
    if [ ${#PIDS[@]} -gt 0 ]; then
        say "stopping the cluster"
        if [ -n "$CTLD_PID" ] && kill -0 "$CTLD_PID" 2>/dev/null; then
            # jobs still queued or running on this cluster (SLURM_CONF points at it): cancel them
            # and let slurmstepd end them before slurmd goes
            timeout 10 scancel --quiet --user root 2>/dev/null
            for _ in $(seq 30); do
                [ -z "$(timeout 5 squeue --noheader --format=%i 2>/dev/null)" ] && break
                sleep 1
            done
        fi
        local i pid
        for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
            pid=${PIDS[$i]}
            kill -0 "$pid" 2>/dev/null || continue
            kill -TERM "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            if kill -0 "$pid" 2>/dev/null; then
                echo "    ${NAMES[$i]} ($pid) ignored SIGTERM; SIGKILL"
                kill -KILL "$pid"
            fi
            wait "$pid" 2>/dev/null
            echo "    stopped ${NAMES[$i]} (pid $pid)"
        done
    fi
    if [ "$RUN_CONF_MADE" -eq 1 ] && [ "$(readlink "$RUN_CONF")" = "$T/conf" ]; then
        rm -f "$RUN_CONF"
    fi
    [ "$RUN_SLURM_MADE" -eq 0 ] || rmdir /run/slurm 2>/dev/null
    if [ "$OK" -eq 1 ] && [ "$KEEP" -eq 0 ]; then
        rm -rf "$T"
    else
        echo "    cluster folder kept: $T (logs in $T/log)"
    fi
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CTLD_PORT=$(free_port); SLURMD_PORT=$(free_port); DBD_PORT=$(free_port); DB_PORT=$(free_port)
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
NODE_MEM=$((MEM_MB - 1024))     # leave 1 GiB to the daemons and the system
DB_PASS=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
MUNGE_SOCKET=$T/munge/munge.socket

cat > "$T/conf/slurm.conf" <<EOF
# One-node cluster written by workflow/slurm/run_on_slurm.sh; lives only in $T.
ClusterName=metarepro
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$T/ctld
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/run/slurmctld.pid
SlurmdPidFile=$T/run/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups (a container may not delegate them): processes are tracked by their parent.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# Accounting through slurmdbd, so that sacct (the executor's status query) sees every job.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# With munge, the connection to slurmdbd is authenticated through this socket (Slurm's
# AccountingStoragePass), not AuthInfo's: without it the commands look for /run/munge.
AccountingStoragePass=$MUNGE_SOCKET
# Keep the executor's --comment (the rules a job runs) in the accounting.
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
# Sample every second, so that even short job steps get a peak memory (MaxRSS) in sacct.
JobAcctGatherFrequency=task=1
JobCompType=jobcomp/none
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$NODE_MEM State=UNKNOWN
PartitionName=metarepro Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

cat > "$T/conf/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$T/run/slurmdbd.pid
LogFile=$T/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
chmod 600 "$T/conf/slurmdbd.conf"
# Every Slurm command and daemon below reads this cluster's configuration (slurmdbd finds
# slurmdbd.conf beside it).
export SLURM_CONF=$T/conf/slurm.conf
# Inside a Slurm job the executor runs each rule through `srun`, with every SLURM_* variable
# removed (snakemake-executor-plugin-slurm-jobstep), SLURM_CONF included; srun then looks for
# /etc/slurm/slurm.conf and next for /run/slurm/conf/slurm.conf, where a slurmd in
# "configless" mode keeps its copy. The script does what such a slurmd does: /run/slurm/conf
# points to this cluster's folder for as long as the cluster runs.
[ -d /run/slurm ] || { mkdir -p /run/slurm && RUN_SLURM_MADE=1; }
ln -s "$T/conf" "$RUN_CONF"
RUN_CONF_MADE=1

start() {   # start NAME COMMAND...: run in the background, remember its pid
    local name=$1; shift
    "$@" > "$T/log/$name.out" 2>&1 &
    PIDS+=($!); NAMES+=("$name")
}
wait_for() {   # wait_for SECONDS WHAT COMMAND...: poll until COMMAND succeeds (each try <= 10 s)
    local limit=$1 what=$2; shift 2
    local deadline=$((SECONDS + limit))
    while [ $SECONDS -lt $deadline ]; do
        if declare -F "$1" >/dev/null; then "$@"; else timeout 10 "$@"; fi >/dev/null 2>&1 && return 0
        kill -0 "${PIDS[-1]}" 2>/dev/null || { tail -n 20 "$T/log/${NAMES[-1]}"*; die "${NAMES[-1]} died while waiting for $what"; }
        sleep 0.2
    done
    tail -n 20 "$T/log/${NAMES[-1]}"*
    die "no $what after $limit s"
}

# ---------------------------------------------------------------------------------------------
# 3. start the daemons
t_start=$(now)
say "cluster folder $T: node $HOST, $CPUS CPUs, $NODE_MEM MB; ports slurmctld $CTLD_PORT, slurmd $SLURMD_PORT, slurmdbd $DBD_PORT, mariadb $DB_PORT"

mungekey --create --keyfile="$T/munge/munge.key" --bits=1024
chmod 400 "$T/munge/munge.key"
start munged munged --foreground --force --socket="$MUNGE_SOCKET" --key-file="$T/munge/munge.key" \
    --pid-file="$T/run/munged.pid" --log-file="$T/log/munged.log" --seed-file="$T/munge/munged.seed"
wait_for 10 "munge socket" munge --socket="$MUNGE_SOCKET" --no-input

mariadb-install-db --no-defaults --datadir="$T/db" --user=root --auth-root-authentication-method=socket \
    --skip-test-db > "$T/log/mariadb-install-db.log" 2>&1 || { cat "$T/log/mariadb-install-db.log"; die "mariadb-install-db failed"; }
start mariadbd mariadbd --no-defaults --datadir="$T/db" --user=root --socket="$T/run/mysql.sock" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$T/run/mariadbd.pid" --log-error="$T/log/mariadbd.log" \
    --skip-log-bin --innodb-buffer-pool-size=128M --innodb-log-file-size=64M --innodb-lock-wait-timeout=900
wait_for 60 "MariaDB" mariadb --no-defaults --socket="$T/run/mysql.sock" -uroot -e "SELECT 1"
mariadb --no-defaults --socket="$T/run/mysql.sock" -uroot -e "
    CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

start slurmdbd slurmdbd -D
wait_for 60 "slurmdbd" sacctmgr --noheader --parsable2 list cluster
sacctmgr --immediate --quiet add cluster metarepro >/dev/null 2>&1 || true

start slurmctld slurmctld -D -i -f "$SLURM_CONF"
CTLD_PID=${PIDS[-1]}
wait_for 60 "slurmctld" scontrol ping
start slurmd slurmd -D -f "$SLURM_CONF"
node_idle() { [ "$(timeout 10 sinfo --noheader --nodes="$HOST" --format=%t)" = "idle" ]; }
wait_for 60 "idle node" node_idle
registered() { timeout 10 sacctmgr --noheader --parsable2 list cluster format=cluster,controlport | grep -q "^metarepro|$CTLD_PORT$"; }
wait_for 60 "cluster registration in slurmdbd" registered
say "cluster up in $(elapsed "$t_start" "$(now)") s"
sinfo --Node --long

# sbatch latency: submit an empty job, wait for it, read the times from the accounting.
t0=$(now)
probe=$(sbatch --parsable --wrap true --job-name probe --output /dev/null)
t1=$(now)
finished() { [ -n "$(timeout 10 sacct -X -n -j "$probe" --state=CD,F,CA --format=JobID)" ]; }
wait_for 60 "end of probe job $probe" finished
t2=$(now)
say "probe job $probe: sbatch returned in $(elapsed "$t0" "$t1") s; submit to accounted end $(elapsed "$t0" "$t2") s"
sacct -X -j "$probe" --format=JobID,State,Submit,Start,End,Elapsed

# ---------------------------------------------------------------------------------------------
# 4. and 5. the two runs, each on a clean copy of the tracked files (results/ left out)
clean_copy() {
    mkdir -p "$1"
    git -C "$ROOT" ls-files -z | grep -zv '^results/' \
        | (cd "$ROOT" && xargs -0 cp --parents --preserve=mode,timestamps -t "$1" 2>/dev/null) || true
    [ -f "$1/Snakefile" ] || die "could not copy the tracked files into $1"
}
run_snakemake() {   # run_snakemake DIR LOG ARGS...: in the background, so that a signal reaches cleanup
    local dir=$1 log=$2; shift 2
    (cd "$dir" && exec "$SNAKEMAKE" "$@") > "$log" 2>&1 &
    RUN_PID=$!
    local status=0
    wait "$RUN_PID" || status=$?
    RUN_PID=""
    return $status
}
config_args=()
[ -z "$EXTRACTED" ] || config_args=(--config "extracted_dir=$EXTRACTED")

clean_copy "$T/slurm-run"
slurm_args=(--profile workflow/profiles/slurm "${config_args[@]}"
    # a one-node cluster answers at once: no need for the 40 s the plugin waits by default
    --slurm-init-seconds-before-status-checks 2 --slurm-keep-successful-logs)
[ -z "$COMPONENTS" ] || slurm_args+=(--group-components "analysis=$COMPONENTS")
say "Slurm run: snakemake ${slurm_args[*]}"
t0=$(now)
run_snakemake "$T/slurm-run" "$T/log/snakemake-slurm.log" "${slurm_args[@]}" \
    || { tail -n 40 "$T/log/snakemake-slurm.log"; die "the Slurm run failed (log: $T/log/snakemake-slurm.log)"; }
t_slurm=$(elapsed "$t0" "$(now)")
say "Slurm run finished in $t_slurm s"

clean_copy "$T/local-run"
say "local run: snakemake --cores $CORES ${config_args[*]}"
t0=$(now)
run_snakemake "$T/local-run" "$T/log/snakemake-local.log" --cores "$CORES" "${config_args[@]}" \
    || { tail -n 40 "$T/log/snakemake-local.log"; die "the local run failed (log: $T/log/snakemake-local.log)"; }
t_local=$(elapsed "$t0" "$(now)")
say "local run finished in $t_local s"

# ---------------------------------------------------------------------------------------------
# 6. evidence and comparison
run_id=$(grep -oE 'run ID: [0-9a-f-]+|--job-name [0-9a-f-]{36}' "$T/log/snakemake-slurm.log" | head -1 | awk '{print $NF}' || true)
since=$(date -d @"${t_start%.*}" +%Y-%m-%dT%H:%M:%S)
say "Slurm accounting of the run (sacct): one line per Slurm job (job name: the workflow's run id)"
sacct -X --starttime "$since" --format=JobID,JobName%36,State,ExitCode,AllocCPUS,ReqMem,Submit,Start,End,Elapsed \
    | grep -v ' probe ' || true
say "what each Slurm job ran (the executor's --comment: rule, or group and rules)"
sacct -X -n -P --starttime "$since" --format=JobID,JobName,Comment | awk -F'|' '$2 != "probe" {print "    " $1 ": " $3}'
say "job steps (each rule runs as one srun step inside its Slurm job): peak memory and CPU time"
sacct --starttime "$since" --format=JobID%14,JobName%12,State,Start,End,Elapsed,TotalCPU,MaxRSS | grep -E '^ *[0-9]+\.[0-9]+ ' || true
n_jobs=$(sacct -X -n --starttime "$since" --format=JobID,JobName%40 | grep -vc ' probe ' || true)
n_files=$(find "$T/slurm-run/results" -type f | wc -l)
say "$n_jobs Slurm jobs${run_id:+ (workflow run $run_id)}; $n_files files in results/"

say "comparing results/ byte for byte"
if diff -r -q "$T/slurm-run/results" "$T/local-run/results" > "$T/log/diff.txt"; then
    say "identical: $n_files files (Slurm run $t_slurm s, local run $t_local s)"
    OK=1
else
    cat "$T/log/diff.txt"
    say "results/ differ between the Slurm run and the local run ($(wc -l < "$T/log/diff.txt") files)"
    KEEP=1
    exit 1
fi
