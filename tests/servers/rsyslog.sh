#!/bin/sh
# A private rsyslogd on loopback for the syslog driver's tests.
#
#   rsyslog.sh start DIR [PORT] [TLS_PORT]   (defaults 5514 and 6514)
#   rsyslog.sh stop DIR
#
# start listens on 127.0.0.1:PORT (udp and tcp), 127.0.0.1:TLS_PORT (tcp with TLS, a
# a CA (ca.pem) and a certificate it signed, made in DIR), DIR/stream.sock (unix stream) and DIR/dgram.sock
# (unixgram). Every message's raw bytes (%rawmsg%, the framing removed) go to one line of
# DIR/udp.log, tcp.log, tls.log, unix.log or unixgram.log. It returns once everything
# listens, and writes "PORT TLS_PORT" to DIR/ports for the tests. stop kills the
# rsyslogd whose pid is in DIR/rsyslogd.pid and waits for it.
# Needs the Debian packages rsyslog and rsyslog-gnutls, and openssl.
set -eu

usage() { echo "usage: $0 start DIR [PORT] [TLS_PORT] | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)
pidfile=$dir/rsyslogd.pid

stop() {
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$pidfile"
}

# True once a tcp port on 127.0.0.1 accepts connections.
listening() {
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null
}

case $cmd in
start)
    port=${3:-5514}
    tls_port=${4:-6514}
    command -v rsyslogd >/dev/null || { echo "rsyslogd not found: apt-get install rsyslog rsyslog-gnutls" >&2; exit 1; }
    stop
    mkdir -p "$dir/work"
    rm -f "$dir"/udp.log "$dir"/tcp.log "$dir"/tls.log "$dir"/unix.log "$dir"/unixgram.log
    # A CA (ca.pem, what clients trust) and the server's certificate signed by it: rustls,
    # unlike Go, refuses a self-signed CA certificate as the server's own.
    if [ ! -s "$dir/cert.pem" ] || [ ! -s "$dir/ca.pem" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=burrow test CA" \
            -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>"$dir/openssl.err"
        openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
            -keyout "$dir/key.pem" -out "$dir/server.csr" 2>>"$dir/openssl.err"
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$dir/ext.cnf"
        openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
            -CAcreateserial -days 7 -extfile "$dir/ext.cnf" -out "$dir/cert.pem" 2>>"$dir/openssl.err"
    fi
    cat >"$dir/rsyslog.conf" <<EOF
global(workDirectory="$dir/work"
       maxMessageSize="64k"
       DefaultNetstreamDriverCAFile="$dir/ca.pem"
       DefaultNetstreamDriverCertFile="$dir/cert.pem"
       DefaultNetstreamDriverKeyFile="$dir/key.pem")
module(load="imudp")
module(load="imptcp")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
module(load="imuxsock" SysSock.Use="off")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="udp") { action(type="omfile" file="$dir/udp.log" template="raw") }
ruleset(name="tcp") { action(type="omfile" file="$dir/tcp.log" template="raw") }
ruleset(name="tls") { action(type="omfile" file="$dir/tls.log" template="raw") }
ruleset(name="unix") { action(type="omfile" file="$dir/unix.log" template="raw") }
ruleset(name="unixgram") { action(type="omfile" file="$dir/unixgram.log" template="raw") }
input(type="imudp" address="127.0.0.1" port="$port" ruleset="udp")
input(type="imptcp" address="127.0.0.1" port="$port" ruleset="tcp")
# gnutls in anon mode fails TLS 1.3 handshakes; offer 1.2 so 1.3-first clients fall back.
input(type="imtcp" address="127.0.0.1" port="$tls_port" ruleset="tls"
      gnutlsPriorityString="NORMAL:-VERS-TLS1.3")
input(type="imptcp" path="$dir/stream.sock" unlink="on" ruleset="unix")
input(type="imuxsock" Socket="$dir/dgram.sock" ruleset="unixgram"
      IgnoreOwnMessages="off" RateLimit.Interval="0")
EOF
    echo "$port $tls_port" >"$dir/ports"
    rsyslogd -f "$dir/rsyslog.conf" -i "$pidfile" >"$dir/rsyslogd.err" 2>&1
    i=0
    until [ -f "$pidfile" ] && [ -S "$dir/stream.sock" ] && [ -S "$dir/dgram.sock" ] \
        && listening "$port" && listening "$tls_port"; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then
            echo "rsyslogd did not come up in 10 s; see $dir/rsyslogd.err:" >&2
            cat "$dir/rsyslogd.err" >&2
            stop
            exit 1
        fi
        sleep 0.1
    done
    ;;
stop)
    stop
    ;;
*)
    usage
    ;;
esac
