//! The driver's own code, run natively against the SDK's fake host: the log directory is a
//! temporary one, and the container is `testing::container()` (id `e41187040f57…`).

use burrow_plugin_sdk::log::driver::LogDriver;
use burrow_plugin_sdk::log::{Error, Guest};
use burrow_plugin_sdk::testing::{self, FakeHost};

use super::Lines;

#[test]
fn lines_go_to_the_containers_file_and_chunks_join() {
    let host = FakeHost::new();
    let mut d: Lines = host.open(&[]).unwrap();
    d.write(vec![testing::stdout("hello"), testing::stderr("oops")])
        .unwrap();
    // A 10-byte line that the host delivered in 4-byte chunks, then an unterminated one.
    d.write(testing::chunks("0123456789", 4, true)).unwrap();
    d.write(testing::chunks("no-newline", 100, false)).unwrap();
    let c = testing::container();
    assert_eq!(
        host.text(&format!("{}.log", c.id)),
        "1795333738 stdout hello\n\
         1795333738 stderr oops\n\
         1795333738 stdout 0123456789\n\
         1795333738 stdout no-newline"
    );
}

#[test]
fn lines_file_names_the_file() {
    let host = FakeHost::new();
    let mut d: Lines = host.open(&[("lines-file", "app.log")]).unwrap();
    d.write(testing::lines(&["a", "b"])).unwrap();
    assert_eq!(
        host.text("app.log"),
        "1795333738 stdout a\n1795333738 stdout b\n"
    );
}

#[test]
fn bad_options_are_refused_with_dockers_words() {
    let host = FakeHost::new();
    let message = |opts: &[(&str, &str)]| match host.validate::<Lines>(opts) {
        Err(Error::InvalidConfig(m)) => m,
        other => panic!("{opts:?} gave {other:?}"),
    };
    assert_eq!(
        message(&[("max-size", "1m")]),
        "unknown log opt 'max-size' for lines log driver"
    );
    assert_eq!(
        message(&[("lines-file", "../x")]),
        "invalid lines-file '../x': give a plain file name"
    );
    assert_eq!(
        message(&[("lines-file", "")]),
        "invalid lines-file '': give a plain file name"
    );
    assert!(host.validate::<Lines>(&[("lines-file", "app.log")]).is_ok());
}

#[test]
fn describe_asks_for_the_log_directory_only() {
    let info = Lines::describe();
    assert_eq!(info.name, "lines");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    let n = info.needs;
    assert!(n.log_dir && !n.network && !n.http && n.secrets.is_empty());
    assert!(
        !Lines::can_read(),
        "burrow keeps its local cache for `burrow logs`"
    );
    testing::check_spec::<Lines>();
}
