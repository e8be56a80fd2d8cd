//! The services' decisions, on a real state store and blob store in a temporary directory
//! (the vfs driver, so no mount and no user namespace is needed), without running any
//! container: what `create`, `rm`, `rmi`, `network` and the lock-based repair decide.

use std::path::Path;

use super::spec::CreateOptions;
use super::{Engine, EngineError, GlobalOptions, RemoveOptions};
use crate::image::registry::Progress;
use crate::state::{self, ImageRecord};

struct Quiet;
impl Progress for Quiet {
    fn event(&self, _: crate::image::registry::ProgressEvent) {}
}

/// An engine of its own under `dir`, with one image (`img:latest`, no layers, `sh` as its
/// command) in its store.
fn engine(dir: &Path) -> Engine {
    let config = dir.join("burrow.toml");
    std::fs::write(&config, "").unwrap();
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let engine = Engine::open(GlobalOptions {
        root: Some(dir.join("data")),
        runroot: Some(run),
        storage_driver: Some("vfs".into()),
        config: Some(config),
    })
    .unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Cmd": ["sh"], "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [] },
    })
    .to_string();
    let image = ImageRecord {
        id: "sha256:1111111111111111111111111111111111111111111111111111111111111111".into(),
        repo_digests: vec![],
        config,
        layers: vec![],
        size: 0,
        added: 1,
    };
    engine
        .state
        .write(|tx| {
            state::put_image(tx, &image)?;
            state::set_tag(tx, "docker.io/library/img:latest", &image.id).map(|_| ())
        })
        .unwrap();
    engine
}

fn opts(name: Option<&str>) -> CreateOptions {
    CreateOptions {
        image: "img".into(),
        name: name.map(str::to_string),
        network: Some("none".into()),
        ..Default::default()
    }
}

#[test]
fn create_claims_a_name_once_and_leaves_nothing_when_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let c = e.containers();
    let id = c.create(&opts(Some("web")), &Quiet).unwrap();
    assert!(e.paths.container_dir(&id).join("rootfs.json").exists());
    let err = c.create(&opts(Some("web")), &Quiet).unwrap_err();
    assert!(
        err.to_string().contains("\"web\" is already in use"),
        "{err}"
    );
    let err = c.create(&opts(Some("bad/name")), &Quiet).unwrap_err();
    assert!(matches!(err, EngineError::BadName(_)), "{err}");
    let all = c.list(true).unwrap();
    assert_eq!(all.len(), 1, "only the first container was recorded");
    let dirs = std::fs::read_dir(e.paths.data.join("containers")).unwrap();
    assert_eq!(dirs.count(), 1, "no files of a refused container");
    // A generated name is Docker's adjective_name.
    let other = c.create(&opts(None), &Quiet).unwrap();
    let name = c.find(&other).unwrap().name;
    assert!(name.contains('_'), "{name}");
}

#[test]
fn a_watched_container_is_not_removed_without_force_and_a_dead_monitor_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let c = e.containers();
    let id = c.create(&opts(Some("db")), &Quiet).unwrap();
    let mut record = c.find("db").unwrap();
    record.status = super::containers::RUNNING.into();
    e.state
        .write(|tx| state::update_container(tx, &record))
        .unwrap();
    // A monitor holds the lock: the container is running, whatever else is true.
    let lock = e
        .records()
        .try_watch(&id)
        .unwrap()
        .expect("the lock is free");
    let err = c.remove("db", RemoveOptions::default()).unwrap_err();
    assert!(matches!(err, EngineError::ContainerRunning(_)), "{err}");
    assert_eq!(c.find("db").unwrap().status, "running");
    // The monitor dies (its lock goes): the next look records the truth.
    drop(lock);
    let found = c.find("db").unwrap();
    assert_eq!(found.status, "exited");
    assert_eq!(found.exit_code, Some(137));
    assert!(found.error.unwrap().contains("monitor died"));
    c.remove("db", RemoveOptions::default()).unwrap();
    assert!(matches!(c.find("db"), Err(EngineError::NoSuchContainer(_))));
    assert!(!e.paths.container_dir(&id).exists());
}

#[test]
fn an_image_in_use_stays_unless_forced_and_then_dangles() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    e.containers().create(&opts(Some("user")), &Quiet).unwrap();
    let images = e.images();
    let err = images.remove("img", false).unwrap_err();
    assert!(matches!(err, EngineError::ImageInUse { .. }), "{err}");
    images.tag("img", "other:1").unwrap();
    // Untagging one of two names deletes nothing.
    let removed = images.remove("other:1", false).unwrap();
    assert_eq!(removed.untagged, ["other:1"]);
    assert!(removed.deleted.is_empty());
    let removed = images.remove("img", true).unwrap();
    assert_eq!(removed.untagged, ["img:latest"]);
    assert!(removed.deleted.is_empty(), "a container still uses it");
    let rows = images.list().unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].dangling, "{:?}", rows[0]);
}

#[test]
fn networks_hand_out_addresses_in_order_and_refuse_what_docker_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let n = e.networks();
    let req = |name: &str, subnet: &str| super::networks::NetworkCreate {
        name: name.into(),
        driver: "bridge".into(),
        subnets: vec![subnet.into()],
        ..Default::default()
    };
    n.create(req("lan", "10.77.0.0/24")).unwrap();
    let err = n.create(req("lan2", "10.77.0.128/25")).unwrap_err();
    assert!(err.to_string().contains("overlaps 10.77.0.0/24"), "{err}");
    let err = n.create(req("lan", "10.78.0.0/24")).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let names: Vec<String> = n
        .list()
        .unwrap()
        .into_iter()
        .map(|n| n.record.name)
        .collect();
    assert_eq!(names, ["bridge", "host", "none", "lan"]);

    // Stopped containers: connect records the address, nothing is plugged in yet.
    let c = e.containers();
    let mut on_lan = opts(Some("a"));
    on_lan.network = Some("lan".into());
    c.create(&on_lan, &Quiet).unwrap();
    c.create(&opts(Some("b")), &Quiet).unwrap();
    let addresses = |key: &str| {
        let id = c.find(key).unwrap().id;
        e.state.container_allocations(&id).unwrap()
    };
    assert_eq!(addresses("a")[0].1, "10.77.0.2");
    let err = n
        .connect("lan", "b", Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("uses --network none"), "{err}");
    let mut on_bridge = opts(Some("c"));
    on_bridge.network = Some("bridge".into());
    c.create(&on_bridge, &Quiet).unwrap();
    n.connect("lan", "c", Default::default()).unwrap();
    assert_eq!(addresses("c").len(), 2);
    assert!(addresses("c").iter().any(|(_, a)| a == "10.77.0.3"));
    let err = n.remove("lan").unwrap_err();
    assert!(err.to_string().contains("has active endpoints"), "{err}");
    n.disconnect("lan", "c").unwrap();
    c.remove("a", RemoveOptions::default()).unwrap();
    assert_eq!(n.prune().unwrap(), ["lan"]);
    let err = n.remove("bridge").unwrap_err();
    assert!(err.to_string().contains("pre-defined network"), "{err}");
}
