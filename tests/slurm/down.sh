#!/usr/bin/env bash
# tests/slurm/down.sh: stop the localhost SLURM cluster of tests/slurm/up.sh.
#
#   bash tests/slurm/down.sh            # cancel its jobs, stop slurmd, slurmctld, slurmdbd,
#                                       # MariaDB and munged (by their pid files) and
#                                       # remove up.sh's /etc/slurm/slurm.conf symlink
#   bash tests/slurm/down.sh --purge    # and delete $DNADIFF_SLURM_DIR (/tmp/dnadiff-slurm)
#
# Only the daemons whose pid files are in $DNADIFF_SLURM_DIR/run are stopped; running it when
# nothing is up is fine.
set -uo pipefail

DIR=${DNADIFF_SLURM_DIR:-/tmp/dnadiff-slurm}
RUN=$DIR/run
export SLURM_CONF=$DIR/etc/slurm.conf
export PATH=$PATH:/usr/sbin

stop() {  # stop NAME: SIGTERM by pid file, then wait (SIGKILL after 20 s)
    local pidfile=$RUN/$1.pid pid
    [[ -f $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
}

if [[ -f $RUN/slurmctld.pid ]] && kill -0 "$(cat "$RUN/slurmctld.pid")" 2>/dev/null; then
    scancel --full --quiet --partition=cpu,gpu 2>/dev/null || true
    sleep 1
fi
for name in slurmd slurmctld slurmdbd mariadbd munged; do
    stop "$name"
done
if [[ -L /etc/slurm/slurm.conf && $(readlink /etc/slurm/slurm.conf) == "$DIR/etc/slurm.conf" ]]; then
    rm -f /etc/slurm/slurm.conf
fi
if [[ ${1:-} == --purge ]]; then
    rm -rf "$DIR"
fi
echo "down.sh: stopped"
