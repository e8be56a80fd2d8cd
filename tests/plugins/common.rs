// Shared by the hostile plugins (included with `include!`): a `describe` that asks for
// `needs`, `validate` that accepts anything, and a reader nobody uses.

fn info(name: &str, needs: Capabilities) -> PluginInfo {
    PluginInfo { name: name.into(), version: "0.1.0".into(), description: "hostile test plugin".into(), needs }
}

fn nothing() -> Capabilities {
    Capabilities {
        log_dir: false,
        network: false,
        default_addresses: vec![],
        http_patterns: vec![],
        http: false,
        secrets: vec![],
    }
}

struct NoReader;

impl GuestReader for NoReader {
    fn open(_c: Container, _opts: Vec<Kv>, _ro: ReadOpts) -> Result<Reader, Error> {
        Err(Error::Unsupported("no reader".into()))
    }
    fn next(&self, _max: u32) -> Result<Vec<Entry>, Error> {
        Ok(vec![])
    }
}
