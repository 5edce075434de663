#!/bin/bash
# accel's Slurm test cluster on this machine: slurmctld + slurmd (one node, 16 fake T4s),
# slurmdbd + MariaDB for QOS, slurmrestd for the REST API; all on loopback, as root, without
# systemd. The Slurm tests and bench/slurm_bench.py use it; .ci/run starts it.
#
#   cluster.sh install   Debian's packages (slurm-wlm 22.05, munge, slurmdbd, MariaDB, slurmrestd)
#   cluster.sh start     starts every daemon (again) and defines the account and the QOS
#   cluster.sh stop      cancels every job, stops every daemon
#   cluster.sh status    what runs, and sinfo
#
# QOS (one per tier of accel's defaults; docs/slurm.md): free < pro < pro_plus < enterprise, each
# preempting those below it by requeue after GraceTime (3 s here, to keep tests short), with the
# tier's max lifetime (and what accel asks more) as MaxWall.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CMD=${1:-status}
REST_USER=accel-slurmrestd  # slurmrestd refuses to run as root or as SlurmUser
HOST=$(hostname -s)

wait_port() { # host port seconds
  for _ in $(seq 1 "$(($3 * 4))"); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.25; done
  echo "cluster.sh: $1:$2 did not come up in $3 s (logs: /var/log/slurm)" >&2
  return 1
}

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() { # name pidfile
  local pf=$2
  running "$pf" || { rm -f "$pf"; return 0; }
  local pid; pid=$(cat "$pf")
  kill "$pid"
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$pf"
  echo "stopped $1 (pid $pid)"
}

case "$CMD" in
install)
  [ "$(id -u)" = 0 ] || { echo "cluster.sh: install needs root" >&2; exit 2; }
  # auth/jwt (slurmrestd's tokens, AuthAltTypes in the configs): Debian 12's security update
  # 22.05.8-4+deb12u3 moved auth_jwt.so from slurm-wlm-basic-plugins into a package of its own.
  jwt_plugin=/usr/lib/x86_64-linux-gnu/slurm-wlm/auth_jwt.so
  if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null ||
    ! command -v slurmrestd >/dev/null || [ ! -e "$jwt_plugin" ]; then
    [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ] || apt-get update
    extra=""
    apt-cache show slurm-wlm-jwt-plugin >/dev/null 2>&1 && extra=slurm-wlm-jwt-plugin
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge slurmrestd \
      slurmdbd slurm-wlm-mysql-plugin mariadb-server $extra
  fi
  ;;
start)
  [ "$(id -u)" = 0 ] || { echo "cluster.sh: start needs root" >&2; exit 2; }
  mkdir -p /tmp/accel-fakegpu
  for i in $(seq 0 15); do [ -c /tmp/accel-fakegpu/nvidia$i ] || mknod /tmp/accel-fakegpu/nvidia$i c 195 "$i"; done
  [ -s /etc/munge/munge.key ] || mungekey --create
  install -d -o munge -g munge -m 0755 /run/munge /var/log/munge /var/lib/munge
  running /run/munge/munged.pid || setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged
  sed "s/@HOST@/$HOST/g" "$HERE/slurm.conf.in" > /etc/slurm/slurm.conf
  install -m 0644 "$HERE/gres.conf" /etc/slurm/gres.conf
  install -d -o slurm -g slurm /var/lib/accel-slurm/ctld /var/log/slurm
  install -d /var/lib/accel-slurm/slurmd
  if [ ! -s /var/lib/accel-slurm/ctld/jwt_hs256.key ]; then
    dd if=/dev/urandom of=/var/lib/accel-slurm/ctld/jwt_hs256.key bs=32 count=1 2>/dev/null
    chown slurm:slurm /var/lib/accel-slurm/ctld/jwt_hs256.key
    chmod 0600 /var/lib/accel-slurm/ctld/jwt_hs256.key
  fi
  install -d -o mysql -g mysql /run/mysqld
  if ! running /run/mysqld/mysqld.pid; then
    /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file=/run/mysqld/mysqld.pid \
      >/var/log/slurm/mariadb.log 2>&1 &
    wait_port 127.0.0.1 3306 60
  fi
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmdbpass';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  install -o slurm -g slurm -m 0600 "$HERE/slurmdbd.conf" /etc/slurm/slurmdbd.conf
  running /run/slurmdbd.pid || slurmdbd
  wait_port 127.0.0.1 6819 60
  sacctmgr -i add cluster accel-test >/dev/null 2>&1 || true
  if running /run/slurmctld.pid; then scontrol reconfigure; else slurmctld; fi
  wait_port 127.0.0.1 6817 60
  running /run/slurmd.pid || slurmd -N "$HOST"
  wait_port 127.0.0.1 6818 60
  # QOS may name gres/gpu only once slurmctld has registered its TRES with slurmdbd.
  sacctmgr -i add account accel Description=accel-runtimes Organization=accel >/dev/null 2>&1 || true
  add_qos() { # name priority maxwall preempts...
    # The preempt list is set when the QOS is added: 22.05's sacctmgr refuses to change it later
    # on these QOS ("QOS Preemption loop detected"), so a QOS that exists keeps its list.
    sacctmgr -i add qos "$1" ${4:+Preempt=$4} >/dev/null 2>&1 || true
    sacctmgr -i modify qos where name="$1" set Priority="$2" PreemptMode=requeue GraceTime=3 MaxWall="$3" \
      Flags=DenyOnLimit >/dev/null
  }
  # MaxWall: the tier's max lifetime, plus what accel asks more (grace and a minute, and for a
  # warm allocation its warm_max_age_s and 2 minutes: 10 min here; docs/slurm.md).
  add_qos free 10 12:15:00 ''
  add_qos pro 100 24:15:00 free
  add_qos pro_plus 1000 24:15:00 free,pro
  add_qos enterprise 10000 7-00:15:00 free,pro,pro_plus
  id "$REST_USER" >/dev/null 2>&1 || useradd -r -M -d /nonexistent -s /usr/sbin/nologin "$REST_USER"
  sacctmgr -i add user root,"$REST_USER" Account=accel QOS=free,pro,pro_plus,enterprise DefaultQOS=free \
    >/dev/null 2>&1 || true
  sacctmgr -i modify user where name=root,"$REST_USER" set QOS=free,pro,pro_plus,enterprise >/dev/null
  for _ in $(seq 1 40); do sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' && break; sleep 0.25; done
  install -d -o "$REST_USER" -g "$REST_USER" /run/slurmrestd
  if ! running /run/slurmrestd/slurmrestd.pid; then
    rm -f /run/slurmrestd/rest.sock
    # SLURM_JWT=daemon: an invalid token in slurmrestd's own environment turns on JWT pass-through.
    SLURM_JWT=daemon setpriv --reuid="$REST_USER" --regid="$REST_USER" --init-groups \
      slurmrestd -s openapi/v0.0.38 -a rest_auth/local,rest_auth/jwt 127.0.0.1:6820 >/var/log/slurm/slurmrestd.log 2>&1 &
    echo $! >/run/slurmrestd/slurmrestd.pid
    wait_port 127.0.0.1 6820 30
  fi
  "$0" status
  ;;
stop)
  if running /run/slurmctld.pid; then
    squeue -h -o %i | xargs -r scancel || true
    for _ in $(seq 1 40); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.25; done
  fi
  stop_pidfile slurmrestd /run/slurmrestd/slurmrestd.pid
  stop_pidfile slurmd /run/slurmd.pid
  stop_pidfile slurmctld /run/slurmctld.pid
  stop_pidfile slurmdbd /run/slurmdbd.pid
  stop_pidfile mariadbd /run/mysqld/mysqld.pid
  stop_pidfile munged /run/munge/munged.pid
  ;;
status)
  for pf in /run/munge/munged.pid /run/mysqld/mysqld.pid /run/slurmdbd.pid /run/slurmctld.pid /run/slurmd.pid \
    /run/slurmrestd/slurmrestd.pid; do
    if running "$pf"; then echo "up   $(cat "$pf") $pf"; else echo "down      $pf"; fi
  done
  sinfo -o '%P %a %l %D %t %N %G' 2>/dev/null || true
  ;;
*)
  echo "usage: $0 {install|start|stop|status}" >&2
  exit 2
  ;;
esac
