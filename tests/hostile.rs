//! Hostile layers never write outside the layer, fail the pull with one clear line and
//! leave nothing behind.

mod common;

use std::path::Path;

use common::{User, fixture};

fn layer_store_is_clean(u: &User) {
    // Only complete layers (named by a 64-hex chain id) may remain: no temp dirs.
    let layers = u.data_dir().join("layers");
    for e in std::fs::read_dir(&layers).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()),
            "leftover in the layer store: {name}"
        );
    }
}

#[test]
fn path_traversal_is_refused() {
    let u = User::new("hostile_traversal");
    let target = Path::new("/tmp/burrow-escape-traversal");
    let _ = std::fs::remove_file(target);
    let o = u.burrow(&["pull", "--tls-verify=false", &fixture("hostile-traversal")]);
    o.code(125)
        .one_line_error()
        .stderr_has("burrow-escape-traversal");
    assert!(!target.exists(), "a layer wrote outside its root");
    layer_store_is_clean(&u);
    assert_eq!(u.burrow(&["images", "-q"]).ok().stdout, "");
}

#[test]
fn symlink_escape_is_refused() {
    let u = User::new("hostile_symlink");
    let dir = Path::new("/tmp/burrow-escape-symlink");
    common::remove_tree(dir);
    std::fs::create_dir_all(dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = u.burrow(&["pull", "--tls-verify=false", &fixture("hostile-symlink")]);
    o.code(125).one_line_error().stderr_has("evil");
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(left.is_empty(), "wrote through a symlink: {left:?}");
    common::remove_tree(dir);
    layer_store_is_clean(&u);
}

#[test]
fn hard_link_escape_is_refused() {
    let u = User::new("hostile_hardlink");
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let shadow = std::fs::read("/etc/shadow").unwrap();
    let o = u.burrow(&["pull", "--tls-verify=false", &fixture("hostile-hardlink")]);
    o.code(125).one_line_error().stderr_has("hl");
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd);
    assert_eq!(std::fs::read("/etc/shadow").unwrap(), shadow);
    layer_store_is_clean(&u);
}

#[test]
fn absolute_names_land_inside_the_rootfs() {
    let u = User::new("hostile_absolute");
    let host = Path::new("/tmp/burrow-escape-absolute");
    let _ = std::fs::remove_file(host);
    let img = u.pull("hostile-absolute");
    assert!(!host.exists());
    let o = u.run(&img, &["cat", "/tmp/burrow-escape-absolute"]);
    assert_eq!(o.ok().stdout, "absolute\n");
    assert!(!host.exists());
}
