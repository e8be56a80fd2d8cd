//! The SQLite state store: images, tags, layers and containers.
//!
//! The database runs in WAL mode with a busy timeout, so many burrow commands can run at
//! once; every state change is one `BEGIN IMMEDIATE` transaction.

mod schema;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::network::ipam::IpamError;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open the state database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "state database {path} is newer than this burrow (schema {found}, supported {supported}); upgrade burrow"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("state database query failed")]
    Query(#[from] rusqlite::Error),
    #[error("state database holds a malformed {what} record for {id}")]
    Corrupt {
        what: &'static str,
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the container name \"{0}\" is already in use; remove that container or choose another name"
    )]
    NameInUse(String),
    #[error("network with name {0} already exists")]
    NetworkExists(String),
    #[error("network {network} has no IPv4 subnet to take an address from")]
    NoSubnet { network: String },
    /// The network's recorded subnet, range or gateway do not make a pool.
    #[error(transparent)]
    Pool(IpamError),
    /// The network's pool refused the address asked for, or has none left.
    #[error("network {network}")]
    AddressPool {
        network: String,
        #[source]
        source: IpamError,
    },
}

type Result<T> = std::result::Result<T, StateError>;

/// One unpacked layer of an image, bottom first in [`ImageRecord::layers`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The compressed blob's digest in the registry / blob store.
    pub digest: String,
    pub diff_id: String,
    pub chain_id: String,
    /// Compressed size.
    pub size: u64,
    pub media_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config digest, "sha256:…" (Docker's image id).
    pub id: String,
    /// `repo@digest` names this image was pulled by.
    pub repo_digests: Vec<String>,
    /// The raw image configuration JSON.
    pub config: String,
    pub layers: Vec<LayerRecord>,
    /// Uncompressed size of all layers, bytes.
    pub size: u64,
    /// Unix seconds when it entered the store.
    pub added: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub image_id: String,
    /// The image as the user named it.
    pub image_name: String,
    /// The engine's container configuration (JSON of engine::ContainerConfig).
    pub config: String,
    pub status: String,
    pub exit_code: Option<i32>,
    pub pid: Option<i32>,
    pub created: i64,
    pub started: Option<i64>,
    pub finished: Option<i64>,
    /// Start time (clock ticks since boot, /proc/PID/stat field 22) of `pid`, so a pid
    /// the kernel gave to another process is never taken for the container.
    pub pid_start: Option<i64>,
    pub monitor_pid: Option<i32>,
    pub restart_count: i64,
    /// Set by stop/kill/rm -f: the restart policy must not bring the container back.
    pub stop_requested: bool,
    /// Why the last start failed or how the container ended abnormally.
    pub error: Option<String>,
    /// State.Health as JSON, when the container has a healthcheck.
    pub health: Option<String>,
}

/// One event: Docker's `type`, `action`, actor id and attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: i64,
    /// Nanoseconds since the epoch.
    pub time_nano: i64,
    pub kind: String,
    pub action: String,
    pub actor_id: String,
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// A user-defined network.
/// One network a container is connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRow {
    pub network_id: String,
    pub address: String,
    /// The interface, for networks joined by `network connect`; None for `--network`'s (eth0).
    pub ifname: Option<String>,
    /// Aliases on this network given to `network connect` (None for `--network`'s).
    pub aliases: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub driver: String,
    /// The engine's network configuration (JSON of engine::network::NetworkConfig).
    pub config: String,
    pub created: i64,
    /// The address handed out last (serial allocation goes on after it).
    pub last_address: Option<String>,
}

pub struct State {
    conn: Connection,
}

impl State {
    pub fn open(path: &Path) -> Result<State> {
        let open_err = |source| StateError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        // Every burrow command opens and closes the database; a checkpoint at each close
        // would cost two fsyncs per command. SQLite checkpoints when the WAL grows instead.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(open_err)?;
        let mut state = State { conn };
        schema::migrate(&mut state.conn, path)?;
        Ok(state)
    }

    /// Runs `f` in one write transaction taken up front (no lock upgrades, so no
    /// SQLITE_BUSY deadlocks between concurrent writers). Shared: the engine's services
    /// all hold the one connection; `f` gets only the transaction, so it cannot start a
    /// second one (SQLite would refuse a nested BEGIN anyway).
    pub fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    // ---- images -------------------------------------------------------------------

    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, repo_digests, config, layers, size, added FROM images ORDER BY added DESC, id",
        )?;
        let rows = stmt.query_map([], image_row)?;
        rows.map(|r| r?.decode()).collect()
    }

    pub fn image(&self, id: &str) -> Result<Option<ImageRecord>> {
        let raw = self
            .conn
            .query_row(
                "SELECT id, repo_digests, config, layers, size, added FROM images WHERE id = ?1",
                [id],
                image_row,
            )
            .optional()?;
        raw.map(RawImage::decode).transpose()
    }

    /// Image ids whose id starts with `prefix` ("sha256:" optional).
    pub fn image_ids_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let full = if prefix.starts_with("sha256:") {
            prefix.to_string()
        } else {
            format!("sha256:{prefix}")
        };
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM images WHERE substr(id, 1, length(?1)) = ?1")?;
        let rows = stmt.query_map([&full], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// All tags: (name, image id), e.g. ("docker.io/library/busybox:latest", "sha256:…").
    pub fn tags(&self) -> Result<Vec<(String, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, image_id FROM tags ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn tag_target(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT image_id FROM tags WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Chain ids of every layer some image still uses.
    pub fn layers_in_use(&self) -> Result<std::collections::HashSet<String>> {
        let mut used = std::collections::HashSet::new();
        for image in self.images()? {
            used.extend(image.layers.into_iter().map(|l| l.chain_id));
        }
        Ok(used)
    }

    // ---- events -------------------------------------------------------------------

    /// Events after `after_seq`, oldest first, at most `limit`.
    pub fn events_after(&self, after_seq: i64, limit: i64) -> Result<Vec<EventRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, time_nano, type, action, actor_id, attributes FROM events
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after_seq, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, time_nano, kind, action, actor_id, attributes) = row?;
            let attributes =
                serde_json::from_str(&attributes).map_err(|source| StateError::Corrupt {
                    what: "event",
                    id: seq.to_string(),
                    source,
                })?;
            out.push(EventRecord {
                seq,
                time_nano,
                kind,
                action,
                actor_id,
                attributes,
            });
        }
        Ok(out)
    }

    /// The sequence number of the newest event (0 when there is none).
    pub fn last_event_seq(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?)
    }

    // ---- containers ---------------------------------------------------------------

    pub fn containers(&self) -> Result<Vec<ContainerRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {CONTAINER_COLUMNS} FROM containers ORDER BY created DESC, id"
        ))?;
        let rows = stmt.query_map([], container_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Resolves a name, a full id or a unique id prefix. Returns every match so the caller
    /// can report ambiguity.
    pub fn find_containers(&self, key: &str) -> Result<Vec<ContainerRecord>> {
        let by_name = self
            .conn
            .query_row(
                &format!("SELECT {CONTAINER_COLUMNS} FROM containers WHERE name = ?1"),
                [key.trim_start_matches('/')],
                container_row,
            )
            .optional()?;
        if let Some(c) = by_name {
            return Ok(vec![c]);
        }
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {CONTAINER_COLUMNS} FROM containers WHERE substr(id, 1, length(?1)) = ?1"
        ))?;
        let rows = stmt.query_map([key], container_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn containers_using_image(&self, image_id: &str) -> Result<Vec<ContainerRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {CONTAINER_COLUMNS} FROM containers WHERE image_id = ?1"
        ))?;
        let rows = stmt.query_map([image_id], container_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}

impl State {
    // ---- networks -----------------------------------------------------------------

    pub fn networks(&self) -> Result<Vec<NetworkRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {NETWORK_COLUMNS} FROM networks ORDER BY created, name"
        ))?;
        let rows = stmt.query_map([], network_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Addresses handed out on `network_id`, with the container holding each.
    pub fn allocations(&self, network_id: &str) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT address, container_id FROM allocations WHERE network_id = ?1 ORDER BY address",
        )?;
        let rows = stmt.query_map([network_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The networks `container_id` is connected to, the one of `--network` first.
    pub fn container_endpoints(&self, container_id: &str) -> Result<Vec<EndpointRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT network_id, address, ifname, aliases FROM allocations WHERE container_id = ?1
             ORDER BY ifname IS NOT NULL, ifname, network_id",
        )?;
        let rows = stmt.query_map([container_id], |r| {
            let aliases: Option<String> = r.get(3)?;
            Ok(EndpointRow {
                network_id: r.get(0)?,
                address: r.get(1)?,
                ifname: r.get(2)?,
                aliases: aliases.and_then(|a| serde_json::from_str(&a).ok()),
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The addresses `container_id` holds: (network id, address).
    pub fn container_allocations(&self, container_id: &str) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT network_id, address FROM allocations WHERE container_id = ?1 ORDER BY network_id",
        )?;
        let rows = stmt.query_map([container_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}

// ---- write helpers used inside State::write ------------------------------------------

/// Appends an event; events older than a week are dropped now and then.
pub fn add_event(
    tx: &Transaction<'_>,
    kind: &str,
    action: &str,
    actor_id: &str,
    attributes: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let attributes = serde_json::to_string(attributes).expect("attributes serialise");
    tx.execute(
        "INSERT INTO events (time_nano, type, action, actor_id, attributes)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now, kind, action, actor_id, attributes],
    )?;
    const WEEK_NANOS: i64 = 7 * 24 * 3600 * 1_000_000_000;
    if tx.last_insert_rowid() % 1000 == 0 {
        tx.execute(
            "DELETE FROM events WHERE time_nano < ?1",
            [now - WEEK_NANOS],
        )?;
    }
    Ok(())
}

pub fn put_image(tx: &Transaction<'_>, image: &ImageRecord) -> Result<()> {
    let layers = serde_json::to_string(&image.layers).expect("layers serialise");
    let repo_digests = serde_json::to_string(&image.repo_digests).expect("digests serialise");
    tx.execute(
        "INSERT INTO images (id, repo_digests, config, layers, size, added)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(id) DO UPDATE SET repo_digests = excluded.repo_digests",
        params![
            image.id,
            repo_digests,
            image.config,
            layers,
            image.size as i64,
            image.added
        ],
    )?;
    Ok(())
}

/// Points `name` at `image_id`, returning the image it pointed at before, if another.
pub fn set_tag(tx: &Transaction<'_>, name: &str, image_id: &str) -> Result<Option<String>> {
    let old: Option<String> = tx
        .query_row("SELECT image_id FROM tags WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    tx.execute(
        "INSERT INTO tags (name, image_id) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
        params![name, image_id],
    )?;
    Ok(old.filter(|o| o != image_id))
}

pub fn remove_tag(tx: &Transaction<'_>, name: &str) -> Result<bool> {
    Ok(tx.execute("DELETE FROM tags WHERE name = ?1", [name])? > 0)
}

/// Drops every `repo@digest` name of an image (a forced `rmi` of an image in use).
pub fn clear_repo_digests(tx: &Transaction<'_>, id: &str) -> Result<()> {
    tx.execute("UPDATE images SET repo_digests = '[]' WHERE id = ?1", [id])?;
    Ok(())
}

pub fn remove_image(tx: &Transaction<'_>, id: &str) -> Result<()> {
    tx.execute("DELETE FROM tags WHERE image_id = ?1", [id])?;
    tx.execute("DELETE FROM images WHERE id = ?1", [id])?;
    Ok(())
}

pub fn insert_container(tx: &Transaction<'_>, c: &ContainerRecord) -> Result<()> {
    let taken: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM containers WHERE name = ?1)",
        [&c.name],
        |r| r.get(0),
    )?;
    if taken {
        return Err(StateError::NameInUse(c.name.clone()));
    }
    tx.execute(
        "INSERT INTO containers (id, name, image_id, image_name, config, status, exit_code, pid, created, started, finished, pid_start, monitor_pid, restart_count, stop_requested, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            c.id, c.name, c.image_id, c.image_name, c.config, c.status, c.exit_code, c.pid,
            c.created, c.started, c.finished, c.pid_start, c.monitor_pid, c.restart_count,
            c.stop_requested, c.error
        ],
    )?;
    Ok(())
}

/// Writes what the container's watcher owns back (status, exit code, pids, times...).
/// `stop_requested` is left alone: only [`request_stop`] and [`clear_stop_request`] change
/// it, so a stop asked for meanwhile is never overwritten.
pub fn update_container(tx: &Transaction<'_>, c: &ContainerRecord) -> Result<()> {
    tx.execute(
        "UPDATE containers SET status = ?2, exit_code = ?3, pid = ?4, started = ?5, finished = ?6,
         pid_start = ?7, monitor_pid = ?8, restart_count = ?9, error = ?10
         WHERE id = ?1",
        params![
            c.id,
            c.status,
            c.exit_code,
            c.pid,
            c.started,
            c.finished,
            c.pid_start,
            c.monitor_pid,
            c.restart_count,
            c.error
        ],
    )?;
    Ok(())
}

/// Marks a container so its restart policy leaves it stopped; returns false when it is gone.
pub fn request_stop(tx: &Transaction<'_>, id: &str) -> Result<bool> {
    Ok(tx.execute(
        "UPDATE containers SET stop_requested = 1 WHERE id = ?1",
        [id],
    )? > 0)
}

/// Stores State.Health (JSON), or clears it.
pub fn set_health(tx: &Transaction<'_>, id: &str, health: Option<&str>) -> Result<()> {
    tx.execute(
        "UPDATE containers SET health = ?2 WHERE id = ?1",
        params![id, health],
    )?;
    Ok(())
}

/// A new start: forget an earlier stop request and error.
pub fn clear_stop_request(tx: &Transaction<'_>, id: &str) -> Result<()> {
    tx.execute(
        "UPDATE containers SET stop_requested = 0, error = NULL WHERE id = ?1",
        [id],
    )?;
    Ok(())
}

pub fn rename_container(tx: &Transaction<'_>, id: &str, name: &str) -> Result<()> {
    let taken: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM containers WHERE name = ?1 AND id != ?2)",
        params![name, id],
        |r| r.get(0),
    )?;
    if taken {
        return Err(StateError::NameInUse(name.to_string()));
    }
    tx.execute(
        "UPDATE containers SET name = ?2 WHERE id = ?1",
        params![id, name],
    )?;
    Ok(())
}

/// Removes a container's record and releases the addresses it held.
pub fn remove_container(tx: &Transaction<'_>, id: &str) -> Result<()> {
    tx.execute("DELETE FROM allocations WHERE container_id = ?1", [id])?;
    tx.execute("DELETE FROM containers WHERE id = ?1", [id])?;
    Ok(())
}

/// Hands `address` on `network_id` to `container_id`; unless it was asked for (`--ip`),
/// serial allocation goes on after it.
pub fn add_allocation(
    tx: &Transaction<'_>,
    network_id: &str,
    address: &str,
    container_id: &str,
    serial: bool,
) -> Result<()> {
    tx.execute(
        "INSERT INTO allocations (network_id, address, container_id) VALUES (?1, ?2, ?3)",
        params![network_id, address, container_id],
    )?;
    if serial {
        tx.execute(
            "UPDATE networks SET last_address = ?2 WHERE id = ?1",
            params![network_id, address],
        )?;
    }
    Ok(())
}

/// Records that the allocation of `container_id` on `network_id` came from `network connect`:
/// the interface the container has there and its aliases on that network.
pub fn set_endpoint(
    tx: &Transaction<'_>,
    network_id: &str,
    container_id: &str,
    ifname: &str,
    aliases: &[String],
) -> Result<()> {
    tx.execute(
        "UPDATE allocations SET ifname = ?3, aliases = ?4 WHERE network_id = ?1 AND container_id = ?2",
        params![
            network_id,
            container_id,
            ifname,
            serde_json::to_string(aliases).expect("aliases serialise")
        ],
    )?;
    Ok(())
}

/// Releases the address `container_id` holds on `network_id` (`network disconnect`).
pub fn remove_allocation(tx: &Transaction<'_>, network_id: &str, container_id: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM allocations WHERE network_id = ?1 AND container_id = ?2",
        params![network_id, container_id],
    )?;
    Ok(())
}

/// The addresses handed out on `network_id` and the last one, read inside a write.
pub fn allocation_state(
    tx: &Transaction<'_>,
    network_id: &str,
) -> Result<(Vec<String>, Option<String>)> {
    let mut stmt = tx.prepare("SELECT address FROM allocations WHERE network_id = ?1")?;
    let taken = stmt
        .query_map([network_id], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    let last = tx.query_row(
        "SELECT last_address FROM networks WHERE id = ?1",
        [network_id],
        |r| r.get(0),
    )?;
    Ok((taken, last))
}

pub fn insert_network(tx: &Transaction<'_>, n: &NetworkRecord) -> Result<()> {
    tx.execute(
        "INSERT INTO networks (id, name, driver, config, created, last_address)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![n.id, n.name, n.driver, n.config, n.created, n.last_address],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StateError::NetworkExists(n.name.clone())
        }
        e => e.into(),
    })?;
    Ok(())
}

/// Removes a network and its allocations.
pub fn remove_network(tx: &Transaction<'_>, id: &str) -> Result<()> {
    tx.execute("DELETE FROM allocations WHERE network_id = ?1", [id])?;
    tx.execute("DELETE FROM networks WHERE id = ?1", [id])?;
    Ok(())
}

// ---- row decoding ----------------------------------------------------------------------

const CONTAINER_COLUMNS: &str = "id, name, image_id, image_name, config, status, exit_code, pid, \
     created, started, finished, pid_start, monitor_pid, restart_count, stop_requested, error, \
     health";

fn container_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ContainerRecord> {
    Ok(ContainerRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        image_id: r.get(2)?,
        image_name: r.get(3)?,
        config: r.get(4)?,
        status: r.get(5)?,
        exit_code: r.get(6)?,
        pid: r.get(7)?,
        created: r.get(8)?,
        started: r.get(9)?,
        finished: r.get(10)?,
        pid_start: r.get(11)?,
        monitor_pid: r.get(12)?,
        restart_count: r.get(13)?,
        stop_requested: r.get(14)?,
        error: r.get(15)?,
        health: r.get(16)?,
    })
}

const NETWORK_COLUMNS: &str = "id, name, driver, config, created, last_address";

fn network_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NetworkRecord> {
    Ok(NetworkRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        driver: r.get(2)?,
        config: r.get(3)?,
        created: r.get(4)?,
        last_address: r.get(5)?,
    })
}

struct RawImage {
    id: String,
    repo_digests: String,
    config: String,
    layers: String,
    size: i64,
    added: i64,
}

fn image_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawImage> {
    Ok(RawImage {
        id: r.get(0)?,
        repo_digests: r.get(1)?,
        config: r.get(2)?,
        layers: r.get(3)?,
        size: r.get(4)?,
        added: r.get(5)?,
    })
}

impl RawImage {
    fn decode(self) -> Result<ImageRecord> {
        let corrupt = |source| StateError::Corrupt {
            what: "image",
            id: self.id.clone(),
            source,
        };
        Ok(ImageRecord {
            repo_digests: serde_json::from_str(&self.repo_digests).map_err(corrupt)?,
            layers: serde_json::from_str(&self.layers).map_err(corrupt)?,
            id: self.id,
            config: self.config,
            size: self.size as u64,
            added: self.added,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, chain: &str) -> ImageRecord {
        ImageRecord {
            id: id.into(),
            repo_digests: vec![format!("r@{id}")],
            config: "{}".into(),
            layers: vec![LayerRecord {
                digest: "sha256:d".into(),
                diff_id: chain.into(),
                chain_id: chain.into(),
                size: 1,
                media_type: "m".into(),
            }],
            size: 10,
            added: 1,
        }
    }

    fn container(id: &str, name: &str) -> ContainerRecord {
        ContainerRecord {
            id: id.into(),
            name: name.into(),
            image_id: "sha256:aa".into(),
            image_name: "img".into(),
            config: "{}".into(),
            status: "created".into(),
            exit_code: None,
            pid: None,
            created: 5,
            started: None,
            finished: None,
            pid_start: None,
            monitor_pid: None,
            restart_count: 0,
            stop_requested: false,
            error: None,
            health: None,
        }
    }

    #[test]
    fn images_tags_and_layers_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(&dir.path().join("s.db")).unwrap();
        st.write(|tx| {
            put_image(tx, &image("sha256:aa", "sha256:c1"))?;
            put_image(tx, &image("sha256:bb", "sha256:c2"))?;
            assert_eq!(set_tag(tx, "x:1", "sha256:aa")?, None);
            assert_eq!(set_tag(tx, "x:1", "sha256:bb")?, Some("sha256:aa".into()));
            Ok(())
        })
        .unwrap();
        assert_eq!(st.images().unwrap().len(), 2);
        assert_eq!(st.tag_target("x:1").unwrap().as_deref(), Some("sha256:bb"));
        assert_eq!(st.image_ids_with_prefix("a").unwrap(), vec!["sha256:aa"]);
        let used = st.layers_in_use().unwrap();
        assert!(used.contains("sha256:c1") && used.contains("sha256:c2"));
        st.write(|tx| remove_image(tx, "sha256:bb")).unwrap();
        assert_eq!(st.tag_target("x:1").unwrap(), None);
        assert!(!st.layers_in_use().unwrap().contains("sha256:c2"));
    }

    #[test]
    fn container_names_are_unique_and_prefixes_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(&dir.path().join("s.db")).unwrap();
        st.write(|tx| insert_container(tx, &container("abc123", "web")))
            .unwrap();
        st.write(|tx| insert_container(tx, &container("abd456", "db")))
            .unwrap();
        let err = st
            .write(|tx| insert_container(tx, &container("ffff", "web")))
            .unwrap_err();
        assert!(matches!(err, StateError::NameInUse(n) if n == "web"));
        assert_eq!(st.find_containers("web").unwrap()[0].id, "abc123");
        assert_eq!(st.find_containers("ab").unwrap().len(), 2);
        assert_eq!(st.find_containers("abd").unwrap()[0].name, "db");
        assert!(st.find_containers("zz").unwrap().is_empty());
    }

    #[test]
    fn concurrent_writers_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        State::open(&path).unwrap();
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let st = State::open(&path).unwrap();
                    for j in 0..20 {
                        let id = format!("{i:02x}{j:02x}");
                        st.write(|tx| insert_container(tx, &container(&id, &id)))
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let st = State::open(&path).unwrap();
        assert_eq!(st.containers().unwrap().len(), 160);
    }
}
