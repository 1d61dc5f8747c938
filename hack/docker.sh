#!/usr/bin/env bash
# Make a working Docker engine on a development machine: install Debian's docker.io when dockerd is
# absent, install a runc wrapper when CAP_SYS_RESOURCE is missing from the capability bounding set
# (otherwise `docker run --privileged`, i.e. every kind node, fails with "unable to apply caps"),
# start dockerd and wait for it. Idempotent; a no-op where `docker info` already works.
source "$(dirname "$0")/lib.sh"
WRAPPER=/usr/local/sbin/trainforge-runc
DAEMON_JSON=/etc/docker/daemon.json
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/trainforge-dockerd.log}"

docker_works() { timeout 10 docker info >/dev/null 2>&1; }

# CAP_SYS_RESOURCE is capability 24; test its bit in this process's bounding set.
cap_sys_resource_missing() {
  local bnd; bnd=$(awk '/^CapBnd/{print $2}' /proc/self/status)
  (( (16#$bnd >> 24 & 1) == 0 ))
}

install_packages() {
  local want=()
  command -v dockerd >/dev/null || want+=(docker.io)
  command -v jq >/dev/null || want+=(jq)
  [ ${#want[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "installing ${want[*]} needs root: run 'sudo $0'"
  log "apt-get install ${want[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
         apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null; } \
    || die "apt-get install ${want[*]} failed; check the apt sources and retry"
}

# The wrapper rewrites the OCI spec (runc create/run: --bundle) or process spec (runc exec:
# --process) without CAP_SYS_RESOURCE, then execs the real runc with the unchanged arguments.
install_runc_wrapper() {
  local real; real=$(command -v runc || true)
  [ -n "$real" ] || die "runc not found after installing docker.io"
  cat > "$WRAPPER.tmp" <<WRAP
#!/bin/sh
# Installed by trainforge hack/docker.sh: this machine's capability bounding set lacks
# CAP_SYS_RESOURCE, so privileged containers must not ask for it.
bundle=""; procfile=""; prev=""
for a in "\$@"; do
  case "\$prev" in --bundle|-b) bundle="\$a" ;; --process|-p) procfile="\$a" ;; esac
  case "\$a" in --bundle=*) bundle="\${a#--bundle=}" ;; --process=*) procfile="\${a#--process=}" ;; esac
  prev="\$a"
done
strip() { # strip FILE JQPATH
  [ -f "\$1" ] || return 0
  /usr/bin/jq "if \$2 then \$2 |= map_values(if type == \"array\" then map(select(. != \"CAP_SYS_RESOURCE\")) else . end) else . end" "\$1" > "\$1.tf" && mv "\$1.tf" "\$1"
}
[ -n "\$bundle" ] && strip "\$bundle/config.json" .process.capabilities
[ -n "\$procfile" ] && strip "\$procfile" .capabilities
exec $real "\$@"
WRAP
  chmod 0755 "$WRAPPER.tmp" && mv "$WRAPPER.tmp" "$WRAPPER"
  mkdir -p /etc/docker
  local current='{}'
  [ -s "$DAEMON_JSON" ] && current=$(cat "$DAEMON_JSON")
  local wanted
  wanted=$(jq --arg p "$WRAPPER" '.runtimes["trainforge-runc"] = {path: $p} | ."default-runtime" = "trainforge-runc"' <<<"$current")
  if [ "$wanted" != "$current" ]; then
    printf '%s\n' "$wanted" > "$DAEMON_JSON"
    log "registered $WRAPPER as Docker's default runtime in $DAEMON_JSON"
    return 10   # tells the caller a running dockerd must restart
  fi
}

start_dockerd() {
  log "starting dockerd (log: $DOCKERD_LOG)"
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl restart docker
  else
    detached setsid dockerd >>"$DOCKERD_LOG" 2>&1   # setsid: outlives our process group
  fi
  for _ in $(seq 1 60); do docker_works && { log "dockerd ready: $(docker version -f '{{.Server.Version}}')"; return 0; }; sleep 1; done
  die "dockerd did not become ready in 60s; see $DOCKERD_LOG"
}

stop_own_dockerd() {
  local pid; pid=$(pgrep -o -x dockerd || true)   # -o: one pid, without `| head` under pipefail
  [ -n "$pid" ] || return 0
  log "restarting dockerd (pid $pid) to load $DAEMON_JSON"
  kill "$pid"; for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
  die "dockerd (pid $pid) did not stop; stop it and re-run $0"
}

needs_restart=0
if docker_works && ! cap_sys_resource_missing; then log "docker already works"; exit 0; fi
# Both lanes of hack/build-tools.sh may get here at once: one of them starts dockerd.
exec 8>"$CACHE_DIR/docker.lock"; flock 8
install_packages
if cap_sys_resource_missing; then
  install_runc_wrapper || { [ $? -eq 10 ] && needs_restart=1; }
fi
if docker_works; then
  [ "$needs_restart" = 1 ] || { log "docker already works (runc wrapper in place)"; exit 0; }
  stop_own_dockerd
fi
start_dockerd
