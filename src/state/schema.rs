//! Schema migrations, applied in order inside one transaction; `user_version` records
//! how far a database has come.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::StateError;

const MIGRATIONS: &[&str] = &[
    // 1: images, tags, containers.
    "CREATE TABLE images (
        id TEXT PRIMARY KEY,
        repo_digests TEXT NOT NULL,
        config TEXT NOT NULL,
        layers TEXT NOT NULL,
        size INTEGER NOT NULL,
        added INTEGER NOT NULL
    );
    CREATE TABLE tags (
        name TEXT PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES images(id)
    );
    CREATE TABLE containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        image_id TEXT NOT NULL,
        image_name TEXT NOT NULL,
        config TEXT NOT NULL,
        status TEXT NOT NULL,
        exit_code INTEGER,
        pid INTEGER,
        created INTEGER NOT NULL,
        started INTEGER,
        finished INTEGER
    );
    CREATE INDEX containers_image ON containers(image_id);",
    // 2: what the monitor of a detached container records.
    "ALTER TABLE containers ADD COLUMN pid_start INTEGER;
    ALTER TABLE containers ADD COLUMN monitor_pid INTEGER;
    ALTER TABLE containers ADD COLUMN restart_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE containers ADD COLUMN stop_requested INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE containers ADD COLUMN error TEXT;",
    // 3: healthcheck state (State.Health as JSON), written by the health prober.
    "ALTER TABLE containers ADD COLUMN health TEXT;",
    // 4: events, as `burrow events` shows them (Docker's type/action/actor).
    "CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time_nano INTEGER NOT NULL,
        type TEXT NOT NULL,
        action TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        attributes TEXT NOT NULL
    );
    CREATE INDEX events_time ON events(time_nano);",
    // 5: networks (the driver's filled-in config as JSON) and the addresses handed out on
    // them; `last_address` is where serial allocation goes on from.
    "CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        driver TEXT NOT NULL,
        config TEXT NOT NULL,
        created INTEGER NOT NULL,
        last_address TEXT
    );
    CREATE TABLE allocations (
        network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        container_id TEXT NOT NULL,
        PRIMARY KEY (network_id, address)
    );
    CREATE INDEX allocations_container ON allocations(container_id);",
    // 6: networks a container joined after create (`network connect`): the interface it got
    // there and its aliases on that network (JSON list). NULL for the network of `--network`.
    "ALTER TABLE allocations ADD COLUMN ifname TEXT;
    ALTER TABLE allocations ADD COLUMN aliases TEXT;",
];

pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StateError> {
    let supported = MIGRATIONS.len() as i64;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > supported {
        return Err(StateError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported,
        });
    }
    for sql in &MIGRATIONS[version as usize..] {
        tx.execute_batch(sql)?;
    }
    if version < supported {
        tx.pragma_update(None, "user_version", supported)?;
    }
    tx.commit()?;
    Ok(())
}
