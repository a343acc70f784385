#!/usr/bin/env bash
# Stop the test cluster that tests/slurm/start_cluster.sh DIR started: cancel its jobs, end
# slurmd, slurmctld and munged by the pids in their pid files (TERM, then KILL after 10 s),
# and remove the /etc/slurm/slurm.conf link to DIR/slurm.conf.
#
#   tests/slurm/stop_cluster.sh DIR
#
# Safe to run more than once and after a partial start.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR=$1
export PATH=$PATH:/usr/sbin

if [ -f "$DIR/slurm.conf" ] && [ -f "$DIR/slurmctld.pid" ]; then
  # Jobs still running would leave slurmstepd processes behind.
  SLURM_CONF=$DIR/slurm.conf timeout 10 scancel --user "$(id -un)" 2>/dev/null || true
  sleep 1
fi

stop_pid_file() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null) || return 0
  case $pid in '' | *[!0-9]*) return 0 ;; esac
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}

stop_pid_file "$DIR/slurmd.pid"
stop_pid_file "$DIR/slurmctld.pid"
stop_pid_file "$DIR/munge/munged.pid"

# The /etc/slurm/slurm.conf link, if it still points at this cluster.
SYSCONF=/etc/slurm/slurm.conf
if [ -L "$SYSCONF" ] && [ "$(readlink "$SYSCONF")" = "$(cd "$DIR" 2>/dev/null && pwd)/slurm.conf" ]; then
  rm -f "$SYSCONF"
fi
exit 0
