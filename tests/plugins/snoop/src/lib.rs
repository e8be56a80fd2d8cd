//! Asks for network, http and the "aws" secret, then in `write` tries everything it should
//! not get: files outside any preopen, WASI sockets, `endpoints` to an address no option
//! names, http to the metadata service, the secret. It fails the write with a report:
//! "succeeded: [...]; refused: [...]".

use burrow_plugin_sdk::log::{
    Capabilities, Container, Entry, Error, Guest, GuestLogger, Kv, Logger, PluginInfo, endpoints,
    http, secrets,
};

include!("../../common.rs");

struct Snoop;

impl Guest for Snoop {
    type Logger = Snooper;
    type Reader = NoReader;
    fn describe() -> PluginInfo {
        info(
            "snoop",
            Capabilities {
                network: true,
                http: true,
                secrets: vec!["aws".into()],
                ..Capabilities::none()
            },
        )
    }
    fn validate(_opts: Vec<Kv>) -> Result<(), Error> {
        Ok(())
    }
    fn can_read() -> bool {
        false
    }
}

struct Snooper;

fn attempt<T, E: std::fmt::Debug>(
    what: &str,
    r: Result<T, E>,
    ok: &mut Vec<String>,
    refused: &mut Vec<String>,
) {
    match r {
        Ok(_) => ok.push(what.to_string()),
        Err(e) => refused.push(format!("{what}: {e:?}")),
    }
}

impl GuestLogger for Snooper {
    fn open(_c: Container, _opts: Vec<Kv>) -> Result<Logger, Error> {
        Ok(Logger::new(Snooper))
    }
    fn write(&self, _batch: Vec<Entry>) -> Result<(), Error> {
        let (mut ok, mut refused) = (Vec::new(), Vec::new());
        attempt(
            "read /etc/passwd",
            std::fs::read("/etc/passwd"),
            &mut ok,
            &mut refused,
        );
        attempt(
            "list /home",
            std::fs::read_dir("/home"),
            &mut ok,
            &mut refused,
        );
        attempt("list /", std::fs::read_dir("/"), &mut ok, &mut refused);
        attempt(
            "list /logs",
            std::fs::read_dir("/logs"),
            &mut ok,
            &mut refused,
        );
        attempt(
            "wasi tcp 127.0.0.1:22",
            std::net::TcpStream::connect("127.0.0.1:22"),
            &mut ok,
            &mut refused,
        );
        attempt(
            "wasi udp bind",
            std::net::UdpSocket::bind("0.0.0.0:0"),
            &mut ok,
            &mut refused,
        );
        attempt(
            "endpoints tcp://127.0.0.1:22",
            endpoints::Conn::open("tcp://127.0.0.1:22", None, 500),
            &mut ok,
            &mut refused,
        );
        attempt(
            "endpoints unix:///etc/passwd",
            endpoints::Conn::open("unix:///etc/passwd", None, 500),
            &mut ok,
            &mut refused,
        );
        let metadata = http::Request {
            method: "GET".into(),
            url: "http://169.254.169.254/latest/meta-data/".into(),
            headers: vec![],
            body: vec![],
            timeout_ms: 500,
        };
        attempt(
            "http metadata",
            http::send(&metadata),
            &mut ok,
            &mut refused,
        );
        attempt("secret aws", secrets::get("aws"), &mut ok, &mut refused);
        attempt(
            "env",
            std::env::vars().next().ok_or("no environment"),
            &mut ok,
            &mut refused,
        );
        Err(Error::Internal(format!(
            "succeeded: [{}]; refused: [{}]",
            ok.join(", "),
            refused.join("; ")
        )))
    }
    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
burrow_plugin_sdk::log::export_log_driver!(Snoop);
