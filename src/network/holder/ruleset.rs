//! The holder's nftables ruleset (the bridges kept apart, what leaves masqueraded, the way
//! out's TCP proxy fed), loaded once at its start, and the per-namespace settings the
//! bridges need at each connect.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::runtime::find_program;

/// Forwarded traffic between two bridges is dropped: separate networks are isolated, as
/// Docker's DOCKER-ISOLATION chains do. Replies to a port forward that speaks as its client
/// are marked (see [`TRANSPARENT_MARK`]). Traffic inside one bridge is switched, not routed.
/// What leaves through `tap0` (the way out's) is masqueraded to the tap's address, but for
/// TCP, see [`TCP_PROXY_RULES`].
/// The host's loopback (slirp's 10.0.2.2) is closed to every bridge but those in `host_open`
/// (networks made with `-o allow_host_loopback=true`).
const RULESET: &str = r#"table inet burrow {
    set host_open {
        type ifname
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        iifname @host_open ip daddr 10.0.2.2 accept
        ip daddr 10.0.2.2 drop
        iifname "br-*" oifname "br-*" drop
        iifname "br-*" oifname "burrow0" drop
        iifname "burrow0" oifname "br-*" drop
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "tap0" masquerade
    }
    chain prerouting {
        type filter hook prerouting priority mangle; policy accept;
        socket transparent 1 meta mark set 0x6275 accept
    }
}
"#;

/// New TCP connections bound for `tap0` (but for slirp's own 10.0.2.0/24) go to the way
/// out's transparent TCP proxy (`proxy.rs`): their SYN is marked here (0x6278) and held
/// by [`HOLD_SYNS`] until the proxy's own connect answered, then handed to its listener
/// ([`crate::network::egress::proxy::LISTEN`]), where it listens; where it does not (slirp4netns, pasta),
/// `tproxy` lets them pass. A SYN let through with the proxy's refused or unreachable mark is
/// answered as a router would. Added on its own: a kernel without nftables' tproxy still gets
/// the rest, and TCP goes through slirp.
const TCP_PROXY_RULES: &str = r#"add chain inet burrow hold { type filter hook prerouting priority -310; policy accept; }
add rule inet burrow hold meta l4proto tcp tcp flags & (fin|syn|rst|ack) == syn ip daddr != 10.0.2.0/24 fib daddr oifname "tap0" meta mark set 0x6278
insert rule inet burrow forward meta l4proto tcp meta mark 0x6276 reject with tcp reset
insert rule inet burrow forward meta mark 0x6277 reject with icmpx type host-unreachable
add rule inet burrow prerouting meta l4proto tcp meta mark != { 0x6276, 0x6277 } ip daddr != 10.0.2.0/24 fib daddr oifname "tap0" tproxy ip to 127.0.0.1:1 meta mark set 0x6275 accept
"#;

/// iptables arguments that queue the marked SYNs for the proxy (`--queue-bypass`: they pass
/// unheld while nobody holds the queue). iptables, not nftables: kernels built without
/// nftables' `queue` expression (this one) still have xtables' NFQUEUE.
const HOLD_SYNS: &[&str] = &[
    "-t",
    "raw",
    "-A",
    "PREROUTING",
    "-p",
    "tcp",
    "-m",
    "mark",
    "--mark",
    "0x6278",
    "-j",
    "NFQUEUE",
    "--queue-num",
    "0",
    "--queue-bypass",
];

/// Replies to the holder's port forwards that speak as the client (IP_TRANSPARENT, see
/// `ports.rs`) are addressed to the client, not to the holder: the ruleset marks those that
/// belong to such a socket, and this mark routes them to the holder itself (table
/// [`LOCAL_TABLE`]: everything is local).
const TRANSPARENT_MARK: u32 = 0x6275;
const LOCAL_TABLE: u32 = 100;

/// Loads the isolation ruleset with `nft` from a thread in the holder's network namespace.
pub(super) fn install_ruleset(netns: &Path) -> std::io::Result<()> {
    let ns = File::open(netns)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            bridges_skip_netfilter();
            nft(RULESET)?;
            match nft(TCP_PROXY_RULES) {
                Ok(()) => {
                    if let Err(err) = iptables(HOLD_SYNS) {
                        tracing::warn!(%err, "SYNs to the outside are not held: a refused connect looks like a reset");
                    }
                }
                Err(err) => tracing::warn!(%err, "TCP leaves through slirp: no transparent proxy"),
            }
            crate::network::executor::deliver_marked_locally(TRANSPARENT_MARK, LOCAL_TABLE)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the nft thread panicked")))
    })
}

/// Opens the host's loopback to the containers on `bridge` (in the calling thread's network
/// namespace, the holder's).
pub fn open_host_loopback(bridge: &str) -> std::io::Result<()> {
    nft(&format!(
        "add element inet burrow host_open {{ \"{bridge}\" }}\n"
    ))
}

/// Runs `nft -f -` on `script` (in the calling thread's network namespace).
fn nft(script: &str) -> std::io::Result<()> {
    let nft = find_program("nft").ok_or_else(|| {
        std::io::Error::other(
            "nft (nftables) is not installed; install the nftables package: burrow uses it to keep networks apart",
        )
    })?;
    run_tool(&nft, "nft -f", &["-f", "-"], script)
}

/// Runs iptables (its nftables flavour where both are installed: the legacy one wants
/// /run/xtables.lock, which the holder's user namespace cannot open) with `args`, in the
/// calling thread's network namespace.
fn iptables(args: &[&str]) -> std::io::Result<()> {
    let program = find_program("iptables-nft")
        .or_else(|| find_program("iptables"))
        .ok_or_else(|| std::io::Error::other("iptables is not installed"))?;
    run_tool(&program, "iptables", args, "")
}

/// Runs `program` with `args` and `input` on its stdin; its failure says `name`, its exit
/// status and what it said on stderr.
fn run_tool(program: &Path, name: &str, args: &[&str], input: &str) -> std::io::Result<()> {
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{name} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// With br_netfilter loaded (Docker loads it), switched traffic inside a bridge also passes
/// the IP forward hook, as from the bridge to itself, and the isolation rules would drop it:
/// switch that off in the current thread's network namespace (the sysctls are per
/// namespace; they appear in it when the module loads, so every connect repeats this).
pub fn bridges_skip_netfilter() {
    for key in ["iptables", "ip6tables", "arptables"] {
        let path = format!("/proc/sys/net/bridge/bridge-nf-call-{key}");
        if Path::new(&path).exists() {
            if let Err(err) = std::fs::write(&path, "0") {
                tracing::warn!(%err, path, "cannot keep bridged traffic out of netfilter");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ruleset_hands_tcp_to_where_the_proxy_listens() {
        use crate::network::egress::proxy;
        const SYN_MARK: u32 = 0x6278;
        for rule in [
            format!("meta mark set {SYN_MARK:#x}\n"),
            format!("tproxy ip to {} ", proxy::LISTEN),
            format!("meta mark {:#x} reject with tcp reset", proxy::REFUSED_MARK),
            format!("meta mark {:#x} reject with icmpx", proxy::UNREACHABLE_MARK),
            format!(
                "meta mark != {{ {:#x}, {:#x} }}",
                proxy::REFUSED_MARK,
                proxy::UNREACHABLE_MARK
            ),
        ] {
            assert!(
                TCP_PROXY_RULES.contains(&rule),
                "no {rule:?} in {TCP_PROXY_RULES}"
            );
        }
        let held = HOLD_SYNS.join(" ");
        for want in [
            format!("--mark {SYN_MARK:#x} "),
            format!("--queue-num {} --queue-bypass", proxy::QUEUE),
        ] {
            assert!(held.contains(&want), "no {want:?} in {held}");
        }
    }
}
