//! Docker's syslog message bytes (moby's formatters plus RackSec/srslog's), and their
//! framing on the wire.

use burrow_plugin_sdk::time::{DateTime, Frac};

use crate::options::Format;

/// What every message of one container shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The facility number, 0..=23.
    pub facility: u8,
    pub format: Format,
    pub hostname: String,
    pub tag: String,
    pub pid: u32,
    /// Local time is UTC plus this.
    pub utc_offset_secs: i32,
}

/// srslog's severities for the two streams.
pub const SEVERITY_INFO: u8 = 6;
pub const SEVERITY_ERR: u8 = 3;

impl Header {
    /// One message, newline included (srslog appends `\n` unless the text ends in one).
    pub fn render(&self, severity: u8, time_ns: u64, line: &[u8]) -> Vec<u8> {
        let pri = u32::from(self.facility) * 8 + u32::from(severity);
        let t = DateTime::from_unix_ns(time_ns, self.utc_offset_secs);
        // Go's "2006-01-02T15:04:05.000000Z07:00" for rfc5424micro: six digits, truncated.
        let frac = match self.format {
            Format::Rfc5424Micro => Frac::Fixed(6),
            _ => Frac::None,
        };
        let head = match self.format {
            Format::Unix => format!("<{pri}>{} {}[{}]: ", t.stamp(), self.tag, self.pid),
            Format::Rfc3164 => format!(
                "<{pri}>{} {} {}[{}]: ",
                t.stamp(),
                self.hostname,
                self.tag,
                self.pid
            ),
            Format::Rfc5424 | Format::Rfc5424Micro => format!(
                "<{pri}>1 {} {} {} {} {} - ",
                t.rfc3339(frac),
                self.hostname,
                self.tag,
                self.pid,
                self.tag
            ),
        };
        let mut out = Vec::with_capacity(head.len() + line.len() + 1);
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            out.push(b'\n');
        }
        out
    }
}

/// How messages are delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The message as is: one datagram each, or newline-delimited on a stream.
    Plain,
    /// RFC 5425 octet counting, `LEN SP MSG` (LEN counts the trailing `\n`).
    OctetCounted,
}

impl Framing {
    /// Docker counts octets only for rfc5424 formats over tcp+tls.
    pub fn for_config(format: Format, tls: bool) -> Self {
        match format {
            Format::Rfc5424 | Format::Rfc5424Micro if tls => Framing::OctetCounted,
            _ => Framing::Plain,
        }
    }

    pub fn frame(self, msg: Vec<u8>) -> Vec<u8> {
        match self {
            Framing::Plain => msg,
            Framing::OctetCounted => {
                let mut out = format!("{} ", msg.len()).into_bytes();
                out.extend_from_slice(&msg);
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The captures' instants (dockerd 20.10.24, pid 23173, hostname "vm", TZ=UTC).
    const T_07_49_25: u64 = 1_795_333_765_000_000_000;
    const T_07_49_26: u64 = 1_795_333_766_000_000_000;
    const T_07_49_27_058287: u64 = 1_795_333_767_058_287_912;
    const T_07_49_39_178361: u64 = 1_795_333_779_178_361_500;

    fn header(format: Format, facility: u8, tag: &str) -> Header {
        Header {
            facility,
            format,
            hostname: "vm".into(),
            tag: tag.into(),
            pid: 23173,
            utc_offset_secs: 0,
        }
    }

    fn text(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn default_format_matches_capture() {
        let h = header(Format::Unix, 3, "e41187040f57");
        assert_eq!(
            text(h.render(SEVERITY_ERR, T_07_49_25, b"err ...")),
            "<27>Nov 22 07:49:25 e41187040f57[23173]: err ...\n"
        );
        let h = header(Format::Unix, 3, "a08f6f131ec9");
        assert_eq!(
            text(h.render(SEVERITY_INFO, T_07_49_27_058287, b"out ...")),
            "<30>Nov 22 07:49:27 a08f6f131ec9[23173]: out ...\n"
        );
    }

    #[test]
    fn rfc3164_local3_matches_capture() {
        let h = header(Format::Rfc3164, 19, "908f035ad997");
        assert_eq!(
            text(h.render(SEVERITY_INFO, T_07_49_26, b"out ...")),
            "<158>Nov 22 07:49:26 vm 908f035ad997[23173]: out ...\n"
        );
    }

    #[test]
    fn rfc5424_matches_capture() {
        let h = header(Format::Rfc5424, 3, "local/bb:1/kind_williams");
        assert_eq!(
            text(h.render(SEVERITY_INFO, T_07_49_26 + 999_999_999, b"out ...")),
            "<30>1 2026-11-22T07:49:26Z vm local/bb:1/kind_williams 23173 local/bb:1/kind_williams - out ...\n"
        );
    }

    #[test]
    fn rfc5424micro_truncates_to_six_digits() {
        let h = header(Format::Rfc5424Micro, 3, "5cead4c8eecd");
        assert_eq!(
            text(h.render(SEVERITY_INFO, T_07_49_27_058287, b"out ...")),
            "<30>1 2026-11-22T07:49:27.058287Z vm 5cead4c8eecd 23173 5cead4c8eecd - out ...\n"
        );
    }

    #[test]
    fn octet_counting_over_tls_matches_capture() {
        let h = header(Format::Rfc5424Micro, 3, "cdac5f97c7e0");
        let framing = Framing::for_config(Format::Rfc5424Micro, true);
        let mut wire = framing.frame(h.render(SEVERITY_INFO, T_07_49_39_178361, b"a"));
        wire.extend(framing.frame(h.render(SEVERITY_INFO, T_07_49_39_178361, b"bb")));
        assert_eq!(
            text(wire),
            "73 <30>1 2026-11-22T07:49:39.178361Z vm cdac5f97c7e0 23173 cdac5f97c7e0 - a\n\
             74 <30>1 2026-11-22T07:49:39.178361Z vm cdac5f97c7e0 23173 cdac5f97c7e0 - bb\n"
        );
    }

    #[test]
    fn only_rfc5424_over_tls_is_octet_counted() {
        assert_eq!(
            Framing::for_config(Format::Rfc5424, true),
            Framing::OctetCounted
        );
        assert_eq!(Framing::for_config(Format::Rfc5424, false), Framing::Plain);
        assert_eq!(Framing::for_config(Format::Rfc3164, true), Framing::Plain);
        assert_eq!(Framing::for_config(Format::Unix, true), Framing::Plain);
    }

    #[test]
    fn local_offset_and_padded_day() {
        // 2026-03-05T23:30:00Z seen from UTC+01:00 and UTC-05:30.
        let t = 1_772_753_400_000_000_000;
        let mut h = header(Format::Rfc5424, 1, "t");
        h.utc_offset_secs = 3600;
        assert!(
            text(h.render(SEVERITY_INFO, t, b"x")).starts_with("<14>1 2026-03-06T00:30:00+01:00 ")
        );
        h.utc_offset_secs = -(5 * 3600 + 1800);
        assert!(
            text(h.render(SEVERITY_INFO, t, b"x")).starts_with("<14>1 2026-03-05T18:00:00-05:30 ")
        );
        h.format = Format::Unix;
        assert!(text(h.render(SEVERITY_INFO, t, b"x")).starts_with("<14>Mar  5 18:00:00 t["));
    }

    #[test]
    fn text_already_ending_in_newline_gets_no_second_one() {
        let h = header(Format::Unix, 3, "t");
        assert!(h.render(SEVERITY_INFO, 0, b"a\n").ends_with(b": a\n"));
    }
}
