//! Events, as `docker events` reports them: recorded in the state store by whichever
//! command or monitor made the change, read back by `burrow events`.

use std::collections::BTreeMap;

use super::Result;
use crate::state::{self, ContainerRecord, EventRecord, State};

/// Reading the events back.
#[derive(Clone, Copy)]
pub struct Events<'e> {
    pub(super) state: &'e State,
}

impl Events<'_> {
    /// Events after `after_seq`, oldest first.
    pub fn after(&self, after_seq: i64) -> Result<Vec<EventRecord>> {
        Ok(self.state.events_after(after_seq, 10_000)?)
    }

    pub fn last_seq(&self) -> Result<i64> {
        Ok(self.state.last_event_seq()?)
    }
}

/// Records a container event with Docker's attributes (name, image) plus `extra`.
/// A failure to record is logged, never returned: the change itself happened.
pub(super) fn container(
    state: &State,
    c: &ContainerRecord,
    action: &str,
    extra: &[(&str, String)],
) {
    let mut attrs = BTreeMap::from([
        ("name".to_string(), c.name.clone()),
        ("image".to_string(), c.image_name.clone()),
    ]);
    attrs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    record(state, "container", action, &c.id, &attrs);
}

/// Records an image event; Docker names the actor by the image's name where it has one.
pub(super) fn image(state: &State, actor: &str, action: &str, name: &str) {
    let attrs = BTreeMap::from([("name".to_string(), name.to_string())]);
    record(state, "image", action, actor, &attrs);
}

pub(super) fn record(
    state: &State,
    kind: &str,
    action: &str,
    actor: &str,
    attrs: &BTreeMap<String, String>,
) {
    if let Err(e) = state.write(|tx| state::add_event(tx, kind, action, actor, attrs)) {
        tracing::warn!(%e, kind, action, "cannot record an event");
    }
}
