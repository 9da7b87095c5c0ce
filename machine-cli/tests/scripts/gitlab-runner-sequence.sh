#!/usr/bin/env bash
# The docker-machine commands GitLab Runner's docker+machine executor runs
# for one autoscaled machine, in its order and with its argument forms
# (boolean flags as --flag=true), against `docker-machine` on PATH.
#
# Usage: gitlab-runner-sequence.sh NAME CREATE-ARGS...
# Needs MACHINE_STORAGE_PATH; prints one line per step.
set -euo pipefail
name=$1
shift

step() { printf 'step: %s\n' "$*"; }

step create
docker-machine create --driver amazonec2 "$@" "$name"

# Runner lists machines by reading the store's machines directory
step list
[ -f "$MACHINE_STORAGE_PATH/machines/$name/config.json" ]

step exist
docker-machine inspect "$name" >/dev/null

step can-connect
docker-machine config "$name" >/dev/null

step store-path
[ "$(docker-machine inspect "$name" -f '{{.HostOptions.AuthOptions.StorePath}}')" = "$MACHINE_STORAGE_PATH/machines/$name" ]

step ip
docker-machine ip "$name"

step credentials
inspect=$(docker-machine inspect "$name")
auth() { printf '%s' "$inspect" | python3 -c 'import json,sys; print(json.load(sys.stdin)["HostOptions"]["AuthOptions"][sys.argv[1]])' "$1"; }
ca=$(auth CaCertPath)
cert=$(auth ClientCertPath)
key=$(auth ClientKeyPath)
url=$(docker-machine url "$name")
case $url in tcp://*:2376) ;; *) echo "unexpected url $url" >&2; exit 1 ;; esac

step docker
docker --tlsverify --tlscacert "$ca" --tlscert "$cert" --tlskey "$key" -H "$url" \
    version --format '{{.Server.Version}}'

step status
[ "$(docker-machine status "$name")" = Running ]

step provision
docker-machine provision "$name"

step stop
docker-machine stop "$name"
[ "$(docker-machine status "$name")" = Stopped ]

step remove
docker-machine rm -y "$name"
[ ! -e "$MACHINE_STORAGE_PATH/machines/$name" ]
step finished
