//! The reader of a driver that cannot read its lines back.

use super::{Container, Entry, Error, GuestReader, Kv, ReadOpts, Reader};

/// The [`GuestReader`] of a driver that keeps nothing to read back (its `can_read` returns
/// false): `open` refuses with [`Error::Unsupported`] and Docker's message,
/// "configured logging driver does not support reading". Name it as the driver's reader,
/// `type Reader = NoReader;` (the crate docs show a whole driver). The host keeps a local
/// cache for such drivers, so `burrow logs` still works; the refusal is seen only when that
/// cache is turned off.
pub struct NoReader;

impl GuestReader for NoReader {
    fn open(_c: Container, _opts: Vec<Kv>, _ro: ReadOpts) -> Result<Reader, Error> {
        Err(Error::Unsupported(
            "configured logging driver does not support reading".into(),
        ))
    }

    fn next(&self, _max: u32) -> Result<Vec<Entry>, Error> {
        Ok(vec![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::HostInfo;

    #[test]
    fn open_refuses_with_dockers_message() {
        let c = Container {
            id: "c".into(),
            name: "n".into(),
            image_id: String::new(),
            image_name: String::new(),
            command: String::new(),
            hostname: String::new(),
            created_ns: 0,
            tag: None,
            attrs: vec![],
            host: HostInfo {
                hostname: String::new(),
                pid: 1,
                utc_offset_secs: 0,
            },
        };
        let ro = ReadOpts {
            since_ns: None,
            until_ns: None,
            tail: None,
        };
        let Err(e) = NoReader::open(c, vec![], ro) else {
            panic!("a reader was opened");
        };
        assert!(
            matches!(&e, Error::Unsupported(m) if m == "configured logging driver does not support reading"),
            "{e:?}"
        );
    }
}
