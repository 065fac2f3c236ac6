#!/usr/bin/env bash
# tests/slurm/up.sh: a real one-node SLURM cluster on localhost, for tests/test_slurm.py.
#
#   bash tests/slurm/up.sh            # start (or find running) munge, MariaDB, slurmdbd,
#                                     # slurmctld, slurmd; wait until the node is idle
#   sinfo; sbatch ...; sacct          # the commands find it through /etc/slurm/slurm.conf
#   bash tests/slurm/down.sh          # stop them all (--purge also deletes the folder)
#
# Needs root and the Debian packages slurm-wlm slurmdbd munge mariadb-server. Everything
# (config, keys, state, logs, the database) lives in $DNADIFF_SLURM_DIR (/tmp/dnadiff-slurm),
# but for one symlink, /etc/slurm/slurm.conf -> that slurm.conf (srun inside a Snakemake job
# step needs the default path; up.sh refuses to replace a real one). The daemons use their own
# ports and sockets, so a system MariaDB or munge is left alone. Running it twice is fine: a running cluster is reused.
#
# The cluster: ClusterName=dnadiff, node "$(hostname -s)" with its real CPUs and ~90 % of its
# memory and one GPU GRES on /dev/null (so `--gpus=1` jobs are schedulable on a CPU-only
# machine), partitions `cpu` (default) and `gpu` on that node, account `dnadiff` for root,
# accounting through slurmdbd (so `sacct` works), ProctrackType=proctrack/linuxproc,
# TaskPlugin=task/none, MinJobAge=600, KillWait=5.
set -euo pipefail

DIR=${DNADIFF_SLURM_DIR:-/tmp/dnadiff-slurm}
ETC=$DIR/etc
LOG=$DIR/log
RUN=$DIR/run
export SLURM_CONF=$ETC/slurm.conf
NODE=$(hostname -s)
CTLD_PORT=${DNADIFF_SLURM_PORT:-16817}   # slurmctld; slurmd +1, slurmdbd +2, MariaDB +3
SQL_PORT=$((CTLD_PORT + 3))

die() { echo "up.sh: $*" >&2; exit 1; }
alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() {  # wait_for SECONDS WHAT COMMAND...
    local end=$((SECONDS + $1)) what=$2; shift 2
    while ((SECONDS < end)); do timeout 10 "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    die "$what did not come up in ${t}s (logs: $LOG)"
}

[[ $(id -u) == 0 ]] || die "must run as root (the daemons run as root here)"
for bin in munged mariadbd mariadb-install-db slurmdbd slurmctld slurmd sinfo sacctmgr; do
    command -v "$bin" >/dev/null || [[ -x /usr/sbin/$bin ]] ||
        die "$bin not found: apt-get install -y slurm-wlm slurmdbd munge mariadb-server"
done
export PATH=$PATH:/usr/sbin

node_ready() { sinfo -h -n "$NODE" -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; }
if alive "$RUN/munged.pid" && alive "$RUN/mariadbd.pid" && alive "$RUN/slurmdbd.pid" &&
   alive "$RUN/slurmctld.pid" && alive "$RUN/slurmd.pid" && node_ready &&
   [[ $(readlink /etc/slurm/slurm.conf) == "$ETC/slurm.conf" ]]; then
    echo "up.sh: cluster already running ($ETC)"
    exit 0
fi

mkdir -p "$ETC" "$LOG" "$RUN" "$DIR/ctld" "$DIR/slurmd" "$DIR/munge"
chmod 755 "$DIR" "$ETC" "$RUN"
chmod 700 "$DIR/munge"

# -- munge: its own key and socket ---------------------------------------------------------------
if [[ ! -s $ETC/munge.key ]]; then
    dd if=/dev/urandom of="$ETC/munge.key" bs=1024 count=1 status=none
fi
chmod 400 "$ETC/munge.key"
if ! alive "$RUN/munged.pid"; then
    munged --force --key-file="$ETC/munge.key" --socket="$RUN/munge.socket" \
        --pid-file="$RUN/munged.pid" --log-file="$LOG/munged.log" \
        --seed-file="$DIR/munge/seed"
fi
wait_for 10 munged test -S "$RUN/munge.socket"

# -- MariaDB: a private instance for the accounting database ------------------------------------
if [[ ! -d $DIR/mysql/mysql ]]; then
    mariadb-install-db --no-defaults --user=root --datadir="$DIR/mysql" \
        --auth-root-authentication-method=socket >"$LOG/mariadb-install.log" 2>&1 ||
        die "mariadb-install-db failed: $LOG/mariadb-install.log"
fi
if ! alive "$RUN/mariadbd.pid"; then
    mariadbd --no-defaults --user=root --datadir="$DIR/mysql" --socket="$RUN/mysql.sock" \
        --pid-file="$RUN/mariadbd.pid" --port="$SQL_PORT" --bind-address=127.0.0.1 \
        --innodb-buffer-pool-size=64M --innodb-lock-wait-timeout=900 \
        --log-error="$LOG/mariadbd.log" >/dev/null 2>&1 &
fi
wait_for 60 MariaDB mariadb --no-defaults --socket="$RUN/mysql.sock" -e "select 1"
mariadb --no-defaults --socket="$RUN/mysql.sock" <<'SQL'
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'dnadiff';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL

# -- SLURM config -------------------------------------------------------------------------------
CPUS=$(nproc --all)
MEM=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
cat >"$ETC/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$RUN/munge.socket
DbdHost=localhost
DbdPort=$((CTLD_PORT + 2))
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$SQL_PORT
StorageUser=slurm
StoragePass=dnadiff
StorageLoc=slurm_acct_db
EOF
chmod 600 "$ETC/slurmdbd.conf"
cat >"$ETC/slurm.conf" <<EOF
ClusterName=dnadiff
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$((CTLD_PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$RUN/munge.socket
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$((CTLD_PORT + 2))
AccountingStoragePass=$RUN/munge.socket
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=600
KillWait=5
SchedulerParameters=sched_interval=5
Waittime=0
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
# The job step's `srun` finds the config only at the default path: the Snakemake jobstep
# executor drops SLURM_CONF (every SLURM_* but the job's ids) from the rule's environment.
if [[ -e /etc/slurm/slurm.conf && $(readlink /etc/slurm/slurm.conf) != "$ETC/slurm.conf" ]]; then
    die "/etc/slurm/slurm.conf exists and is not this cluster's: a real SLURM is configured here"
fi
mkdir -p /etc/slurm
ln -sfn "$ETC/slurm.conf" /etc/slurm/slurm.conf
# a GPU GRES on /dev/null: `--gpus=1` jobs are schedulable; nothing real is bound, so
# training runs on the CPU (CUDA_VISIBLE_DEVICES=0 selects nothing in CPU-only torch)
echo "NodeName=$NODE Name=gpu File=/dev/null" >"$ETC/gres.conf"

# -- daemons ------------------------------------------------------------------------------------
if ! alive "$RUN/slurmdbd.pid"; then
    slurmdbd   # reads slurmdbd.conf beside $SLURM_CONF
fi
wait_for 60 slurmdbd sacctmgr -n list cluster
if ! alive "$RUN/slurmctld.pid"; then
    sacctmgr -i add cluster dnadiff >/dev/null 2>&1 || true
    slurmctld -f "$SLURM_CONF"
fi
wait_for 30 slurmctld scontrol ping
if ! alive "$RUN/slurmd.pid"; then
    slurmd -f "$SLURM_CONF"
fi
sacctmgr -i add account dnadiff Description=tests Organization=dnadiff >/dev/null 2>&1 || true
sacctmgr -i add user root Account=dnadiff >/dev/null 2>&1 || true
for ((i = 0; i < 150; i++)); do
    node_ready && break
    # a node left down by an earlier run comes back
    scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
    sleep 0.2
done
node_ready || die "node $NODE not idle: $(sinfo -h -N -o '%N %t %E' 2>&1) (logs: $LOG)"
echo "up.sh: cluster up: node $NODE ($CPUS CPUs, $MEM MB), partitions cpu gpu," \
     "account dnadiff ($ETC)"
