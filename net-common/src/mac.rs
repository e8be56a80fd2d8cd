//! MAC addresses: the one a user asks for (`--mac-address`) or Docker's derived one.

use std::net::IpAddr;

use crate::invalid;
use crate::wit::Error;

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`), refusing group and all-zero addresses, which no
/// interface may carry.
pub fn parse(s: &str) -> Result<[u8; 6], Error> {
    let malformed = || {
        invalid(format!(
            "invalid MAC address \"{s}\": expected six hex pairs such as 02:42:ac:11:00:02"
        ))
    };
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(malformed());
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(&parts) {
        if part.len() != 2 {
            return Err(malformed());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| malformed())?;
    }
    if mac[0] & 1 == 1 {
        return Err(invalid(format!(
            "invalid MAC address {}: it is a multicast address",
            format(mac)
        )));
    }
    if mac == [0; 6] {
        return Err(invalid("invalid MAC address 00:00:00:00:00:00"));
    }
    Ok(mac)
}

pub fn format(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// Docker's classic scheme: `02:42` (locally administered, unicast) and the last four bytes
/// of the address, so 172.17.0.2 gets 02:42:ac:11:00:02.
pub fn derive(ip: IpAddr) -> [u8; 6] {
    let tail = match ip {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x42, tail[0], tail[1], tail[2], tail[3]]
}

/// The container interface's MAC: the requested one (normalised to lowercase with `:`),
/// else derived from the first IPv4 address, else from the first address.
pub fn choose(requested: Option<&str>, ips: &[IpAddr]) -> Result<Option<String>, Error> {
    if let Some(s) = requested {
        return parse(s).map(|m| Some(format(m)));
    }
    let first = ips.iter().find(|ip| ip.is_ipv4()).or(ips.first());
    Ok(first.map(|ip| format(derive(*ip))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message;

    #[test]
    fn derives_dockers_mac_from_the_ipv4_address() {
        let ips: Vec<IpAddr> = vec!["fd00::5".parse().unwrap(), "172.17.0.2".parse().unwrap()];
        assert_eq!(
            choose(None, &ips).unwrap().as_deref(),
            Some("02:42:ac:11:00:02")
        );
        let v6: Vec<IpAddr> = vec!["fd00::a:b0c".parse().unwrap()];
        assert_eq!(
            choose(None, &v6).unwrap().as_deref(),
            Some("02:42:00:0a:0b:0c")
        );
        assert_eq!(choose(None, &[]).unwrap(), None);
    }

    #[test]
    fn requested_mac_is_normalised_or_refused() {
        assert_eq!(
            choose(Some("92-D0-C6-0A-29-33"), &[]).unwrap().as_deref(),
            Some("92:d0:c6:0a:29:33")
        );
        let bad = choose(Some("92:d0:c6:0a:29"), &[]).unwrap_err();
        assert_eq!(
            message(&bad),
            "invalid MAC address \"92:d0:c6:0a:29\": expected six hex pairs such as 02:42:ac:11:00:02"
        );
        let bad = choose(Some("92:d0:c6:0a:29:zz"), &[]).unwrap_err();
        assert!(message(&bad).starts_with("invalid MAC address \"92:d0:c6:0a:29:zz\""));
        let multicast = choose(Some("01:00:5E:00:00:01"), &[]).unwrap_err();
        assert_eq!(
            message(&multicast),
            "invalid MAC address 01:00:5e:00:00:01: it is a multicast address"
        );
        let zero = choose(Some("00:00:00:00:00:00"), &[]).unwrap_err();
        assert_eq!(message(&zero), "invalid MAC address 00:00:00:00:00:00");
    }
}
