//! The records the built-in DNS of each network answers.

use std::collections::BTreeSet;

use super::Networks;
use crate::engine::{EngineError, Result};

impl Networks<'_> {
    /// Rewrites the records the built-in DNS of network `id` answers (when it has one): for
    /// every container holding an address there, its name, aliases, short id and hostname.
    /// Best effort: a failure is logged, and the names are missing until the next rewrite.
    pub(in crate::engine) fn refresh_dns(&self, id: &str) {
        if let Err(err) = self.write_dns_records(id) {
            tracing::warn!(%err, network = id, "cannot write the network's DNS records");
        }
    }

    fn write_dns_records(&self, id: &str) -> Result<()> {
        let n = self.find(id)?;
        let Some(gateway) = n.dns_server() else {
            return Ok(());
        };
        let mut text = String::new();
        for (cid, address) in &n.containers {
            let Some(c) = self.state.find_containers(cid)?.pop() else {
                continue;
            };
            let config = self.records.config(&c)?;
            // Aliases given to `network connect`, else those of --network-alias.
            let aliases = self
                .state
                .container_endpoints(cid)?
                .into_iter()
                .find(|r| r.network_id == n.record.id)
                .and_then(|r| r.aliases)
                .unwrap_or(config.dns.aliases);
            let short = &c.id[..12];
            let names = std::iter::once(c.name.as_str())
                .chain(aliases.iter().map(String::as_str))
                .chain([short, config.hostname.as_str()]);
            let mut seen = BTreeSet::new();
            for name in names.filter(|n| !n.is_empty()) {
                if seen.insert(name) {
                    text.push_str(&format!("{name} {address}\n"));
                }
            }
        }
        let path =
            crate::network::holder::records_path(&self.paths.runtime.join("network"), gateway);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| EngineError::Io {
                what: "create",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        super::super::lock::write_replace_unsynced(&path, text.as_bytes())
    }
}
