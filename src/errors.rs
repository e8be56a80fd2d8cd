//! How an error reads to a user: one line, its causes after it. The CLI prints errors with
//! this, and so will the REST API's error bodies; errors that cross a process boundary are
//! rendered with it too, so they read the same.

/// "what failed: why: root cause" on one line, skipping repeats of the same text.
pub fn render_chain(err: &dyn std::error::Error) -> String {
    chain_parts(err).join(": ")
}

/// The messages [`render_chain`] joins: the error's, then each cause's that the previous
/// one kept does not already say (a forked job's error crosses to burrow as this list).
pub fn chain_parts(err: &dyn std::error::Error) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut cause = Some(err);
    while let Some(e) = cause {
        let text = e.to_string();
        if parts.last().is_none_or(|p| !p.contains(&text)) {
            parts.push(text);
        }
        cause = e.source();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct E(&'static str, #[source] Option<Box<E>>);

    #[test]
    fn causes_follow_on_one_line_without_repeats() {
        let root = E("permission denied", None);
        let mid = E("cannot open /x: permission denied", Some(Box::new(root)));
        let top = E("cannot start c1", Some(Box::new(mid)));
        assert_eq!(
            render_chain(&top),
            "cannot start c1: cannot open /x: permission denied"
        );
    }
}
