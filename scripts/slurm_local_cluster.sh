#!/bin/sh
# A one-node SLURM cluster on this machine (loopback only) for `make test-slurm`: munge, slurmctld and
# slurmd as root, no accounting database, no cgroups. Needs Debian's slurm-wlm and munge packages
# (apt-get install -y slurm-wlm munge). Usage: scripts/slurm_local_cluster.sh start|stop
set -e
STATE=${SLURM_LOCAL_STATE:-/tmp/alitok-slurm}
CONF=/etc/slurm/slurm.conf
case "$1" in
start)
  mkdir -p "$STATE/spool" "$STATE/ctld" /etc/slurm /run/munge /var/log/munge /var/lib/munge
  [ -f /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged || /usr/sbin/munged --force
  HOST=$(hostname -s); CPUS=$(nproc); MEM=$(awk '/MemTotal/ {print int($2/1024) - 1024}' /proc/meminfo)
  cat > $CONF <<CONF
ClusterName=alitok-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=2
MpiDefault=none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
  /usr/sbin/slurmctld -c
  /usr/sbin/slurmd
  for i in $(seq 30); do sinfo -h -o %T 2>/dev/null | grep -q idle && exit 0; sleep 1; done
  echo "slurm did not come up; see $STATE/*.log" >&2; exit 1;;
stop)
  [ -f "$STATE/slurmd.pid" ] && kill "$(cat $STATE/slurmd.pid)" || true
  [ -f "$STATE/slurmctld.pid" ] && kill "$(cat $STATE/slurmctld.pid)" || true;;
esac
