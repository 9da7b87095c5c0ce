# shellcheck shell=bash
# Shell pieces the bench scripts share (sourced, not run).

# start_silent_listener PORTFILE: a TCP listener on 127.0.0.1 that accepts
# connections and never answers (a black-holed daemon), in the background.
# Sets SILENT (its port) and LISTENER_PID (for the caller's cleanup).
# shellcheck disable=SC2034 # both are read by the scripts that source this
start_silent_listener() {
    local portfile=$1
    python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(128)
print(s.getsockname()[1], flush=True)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
' >"$portfile" &
    LISTENER_PID=$!
    for _ in $(seq 50); do [ -s "$portfile" ] && break; sleep 0.1; done
    SILENT=$(cat "$portfile")
}
