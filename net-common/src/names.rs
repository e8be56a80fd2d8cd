//! Interface names: the kernel's rules and the names burrow derives.

use crate::wit::{Error, Network};
use crate::{internal, invalid};

/// The longest interface name Linux accepts (IFNAMSIZ is 16 with the terminating NUL).
pub const IFNAME_MAX: usize = 15;

/// Checks `name` the way the kernel's `dev_valid_name` does; `what` names it in the error
/// ("bridge name", "interface name").
pub fn check_ifname(what: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(invalid(format!("{what} is empty")));
    }
    if name.len() > IFNAME_MAX {
        return Err(invalid(format!(
            "{what} \"{name}\" is too long: interface names have at most {IFNAME_MAX} characters"
        )));
    }
    let bad = |c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control();
    if name == "." || name == ".." || name.chars().any(bad) {
        return Err(invalid(format!(
            "{what} \"{name}\" is not a valid interface name: it cannot be . or .. nor contain /, : or spaces"
        )));
    }
    Ok(())
}

/// The first 12 characters of an id, as Docker shows ids (`br-` names, DNS short ids).
pub fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

/// A user-defined bridge's default name, Docker's: `br-` and the first 12 of the network id.
pub fn bridge_name(n: &Network) -> Result<String, Error> {
    if n.id.is_empty() {
        return Err(internal(format!("network {} has no id", n.name)));
    }
    Ok(format!("br-{}", short_id(&n.id)))
}

/// The host end of a container's veth pair: `veth` and 11 hex digits of a hash of the
/// container and network ids (15 characters). Derived rather than random so that `teardown`
/// names the same link `setup` made, and a container on two networks gets two names.
pub fn veth_name(container_id: &str, network_id: &str) -> String {
    let h = fnv1a64(&[container_id, network_id]);
    format!("veth{:011x}", h >> (64 - 44))
}

/// FNV-1a over the parts, each followed by a NUL so that ("ab","c") and ("a","bc") differ.
pub fn fnv1a64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message;

    #[test]
    fn interface_names_follow_the_kernel() {
        assert!(check_ifname("bridge name", "br-0123456789ab").is_ok());
        assert!(check_ifname("bridge name", "abcdefghijklmno").is_ok());
        let long = check_ifname("bridge name", "abcdefghijklmnop").unwrap_err();
        assert_eq!(
            message(&long),
            "bridge name \"abcdefghijklmnop\" is too long: interface names have at most 15 characters"
        );
        for bad in ["a/b", "a:b", "a b", ".", ".."] {
            let e = check_ifname("interface name", bad).unwrap_err();
            assert_eq!(
                message(&e),
                format!(
                    "interface name \"{bad}\" is not a valid interface name: it cannot be . or .. nor contain /, : or spaces"
                )
            );
        }
        assert_eq!(
            message(&check_ifname("interface name", "").unwrap_err()),
            "interface name is empty"
        );
    }

    #[test]
    fn veth_names_fit_and_differ_per_network() {
        let a = veth_name("c0ffee", "net1");
        let b = veth_name("c0ffee", "net2");
        assert_eq!(a.len(), IFNAME_MAX);
        assert!(a.starts_with("veth"), "{a}");
        assert_ne!(a, b);
        assert_eq!(a, veth_name("c0ffee", "net1"));
        assert_ne!(fnv1a64(&["ab", "c"]), fnv1a64(&["a", "bc"]));
    }
}
