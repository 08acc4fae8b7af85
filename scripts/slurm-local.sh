#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for CI and for trying the cluster path locally.
#
#   scripts/slurm-local.sh start    install slurm-wlm + munge if missing (apt-get), write the
#                                   config, start munged, slurmctld and slurmd, wait until the
#                                   node is idle (idempotent: a running cluster is left as is)
#   scripts/slurm-local.sh stop     stop the daemons (idempotent)
#   scripts/slurm-local.sh status   sinfo/squeue of the cluster; exit status 1 when it is down
#
# Everything lives in $CONLEARN_SLURM_DIR (default ${TMPDIR:-/tmp}/conlearn-slurm): slurm.conf,
# its own munge key and socket, state, spool and logs. Nothing under /etc is changed. The daemons
# listen on 127.0.0.1 only (ports $CONLEARN_SLURM_PORT and the next one, default 6917/6918).
# Client commands need SLURM_CONF: `. $CONLEARN_SLURM_DIR/slurm.env` sets it (the tests read
# that file). Needs root (the daemons run as root, munged as the munge user): use sudo.
set -euo pipefail

DIR=${CONLEARN_SLURM_DIR:-${TMPDIR:-/tmp}/conlearn-slurm}
PORT=${CONLEARN_SLURM_PORT:-6917}
WAIT_S=${CONLEARN_SLURM_WAIT_S:-60}
CONF="$DIR/slurm.conf"
MUNGE_SOCKET="$DIR/munge/munge.socket"
export SLURM_CONF="$CONF"

export PATH="$PATH:/usr/sbin:/sbin"  # the daemons live in sbin
say() { echo "slurm-local: $*" >&2; }
die() { say "$*"; exit 1; }

pid_alive() {  # pid_alive FILE: the process named in FILE runs
  [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_if_missing() {
  local cmd missing=0
  for cmd in munged slurmctld slurmd sinfo sbatch; do
    command -v "$cmd" >/dev/null 2>&1 || missing=1
  done
  ((missing)) || return 0
  [[ $EUID -eq 0 ]] || die "slurm-wlm and munge are not installed; run this as root (sudo) to install them"
  command -v apt-get >/dev/null || die "slurm-wlm and munge are not installed and apt-get is not available"
  say "installing slurm-wlm and munge with apt-get (log: $DIR/apt.log)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq slurm-wlm munge >"$DIR/apt.log" 2>&1; then
    apt-get update -qq >>"$DIR/apt.log" 2>&1 || true
    apt-get install -y -qq slurm-wlm munge >>"$DIR/apt.log" 2>&1 \
      || die "apt-get install slurm-wlm munge failed; see $DIR/apt.log"
  fi
}

write_config() {
  local node host
  host=$(hostname -s)
  # the node as slurmd sees it (CPUs, sockets, cores, threads, memory), uptime dropped
  node=$(slurmd -C | head -n 1) || die "slurmd -C failed"
  [[ $node == NodeName=* ]] || die "unexpected 'slurmd -C' output: $node"
  mkdir -p "$DIR"/{state,spool,log}
  : > "$DIR/plugstack.conf"
  cat > "$CONF.tmp" <<EOF
# written by scripts/slurm-local.sh: one node on loopback, no accounting, no cgroups
ClusterName=conlearn-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
PlugStackConfig=$DIR/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
KillWait=5
MinJobAge=60
SlurmctldTimeout=30
SlurmdTimeout=30
$node NodeAddr=127.0.0.1 NodeHostname=$host State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
  printf 'SLURM_CONF=%s\n' "$CONF" > "$DIR/slurm.env"
}

start_munge() {
  local m="$DIR/munge"
  pid_alive "$m/munged.pid" && return 0
  mkdir -p "$m"
  if [[ ! -s "$m/munge.key" ]]; then
    dd if=/dev/urandom of="$m/munge.key" bs=1024 count=1 status=none
  fi
  chown -R munge:munge "$m"
  chmod 0755 "$m"
  chmod 0400 "$m/munge.key"
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
  as_munge munged --key-file="$m/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$m/munged.pid" --log-file="$m/munged.log" --seed-file="$m/munged.seed" \
    || die "munged did not start; see $m/munged.log"
}

as_munge() {  # run a command as the munge user
  if command -v runuser >/dev/null; then runuser -u munge -- "$@"; else setpriv --reuid=munge --regid=munge --init-groups "$@"; fi
}

node_state() {  # idle, mix, alloc, down, drain, ... ("*" appended: not responding)
  sinfo -h -N -o '%t' 2>/dev/null | head -n 1
}

usable() { [[ "$(node_state)" =~ ^(idle|mix|alloc)$ ]]; }

start() {
  mkdir -p "$DIR"
  install_if_missing
  if pid_alive "$DIR/slurmctld.pid" && pid_alive "$DIR/slurmd.pid" && usable; then
    say "already running ($CONF)"
    return 0
  fi
  [[ $EUID -eq 0 ]] || die "the daemons must be started as root (sudo $0 start)"
  write_config
  start_munge
  pid_alive "$DIR/slurmctld.pid" || slurmctld || die "slurmctld did not start; see $DIR/log/slurmctld.log"
  pid_alive "$DIR/slurmd.pid" || slurmd || die "slurmd did not start; see $DIR/log/slurmd.log"
  local t0=$SECONDS state=""
  while ((SECONDS - t0 < WAIT_S)); do
    state=$(node_state)
    if [[ $state == idle ]]; then
      say "node idle after $((SECONDS - t0)) s; export SLURM_CONF=$CONF (or: . $DIR/slurm.env)"
      return 0
    fi
    if [[ $state == down* || $state == drain* ]]; then  # e.g. down after an unclean stop
      scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
    fi
    sleep 0.5
  done
  die "node not idle after $WAIT_S s (state '${state:-unknown}'); see $DIR/log/slurmctld.log and slurmd.log"
}

stop_pidfile() {  # stop_pidfile FILE NAME: TERM, then KILL after 10 s
  local f=$1 pid i
  pid_alive "$f" || { rm -f "$f"; return 0; }
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$f"; return 0; }
    sleep 0.1
  done
  say "$2 (pid $pid) did not stop in 10 s; killing it"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

stop() {
  [[ -d $DIR ]] || return 0
  if pid_alive "$DIR/slurmctld.pid"; then
    scancel --full --quiet --partition=local 2>/dev/null || true  # jobs die with their steps
  fi
  stop_pidfile "$DIR/slurmd.pid" slurmd
  stop_pidfile "$DIR/slurmctld.pid" slurmctld
  stop_pidfile "$DIR/munge/munged.pid" munged
  say "stopped"
}

status() {
  if ! pid_alive "$DIR/slurmctld.pid" || ! pid_alive "$DIR/slurmd.pid"; then
    say "not running ($DIR)"
    return 1
  fi
  echo "SLURM_CONF=$CONF"
  sinfo
  squeue
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
