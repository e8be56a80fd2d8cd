//! Names inside an archive: entry names normalised and checked, links resolved without
//! ever leaving the archive.

use std::collections::HashMap;

use super::ArchiveError;

/// How many symlinks a name may go through before it counts as a loop.
const MAX_LINK_HOPS: usize = 16;

/// Normalises an entry name (`./a//b/` → `a/b`). `None` for the archive root (`./`).
/// Absolute names and names with `..` are refused: a well-formed archive never has them
/// and an extractor would write outside its directory.
pub(super) fn entry_name(raw: &[u8]) -> Result<Option<String>, ArchiveError> {
    let shown = String::from_utf8_lossy(raw).into_owned();
    let hostile = |reason| ArchiveError::Hostile {
        entry: shown.clone(),
        reason,
    };
    if raw.starts_with(b"/") {
        return Err(hostile("has an absolute name"));
    }
    let text = std::str::from_utf8(raw).map_err(|_| hostile("has a name that is not UTF-8"))?;
    let mut comps = Vec::new();
    for comp in text.split('/') {
        match comp {
            "" | "." => {}
            ".." => return Err(hostile("climbs out of the archive with \"..\"")),
            c => comps.push(c),
        }
    }
    Ok((!comps.is_empty()).then(|| comps.join("/")))
}

/// The archive path a symlink at `entry` points to; refused when absolute or when it
/// climbs above the archive's root.
pub(super) fn symlink_target(entry: &str, target: &[u8]) -> Result<String, ArchiveError> {
    let shown = String::from_utf8_lossy(target).into_owned();
    let bad = |reason| ArchiveError::BadLink {
        entry: entry.to_owned(),
        target: shown.clone(),
        reason,
    };
    if target.starts_with(b"/") {
        return Err(bad("an absolute path outside the archive"));
    }
    let text = std::str::from_utf8(target).map_err(|_| bad("a name that is not UTF-8"))?;
    let mut comps: Vec<&str> = entry.split('/').collect();
    comps.pop(); // the link's own name
    for comp in text.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if comps.pop().is_none() {
                    return Err(bad("outside the archive"));
                }
            }
            c => comps.push(c),
        }
    }
    if comps.is_empty() {
        return Err(bad("the archive's root, not a file"));
    }
    Ok(comps.join("/"))
}

/// The target of a hard link: a name relative to the archive's root.
pub(super) fn hardlink_target(entry: &str, target: &[u8]) -> Result<String, ArchiveError> {
    let shown = String::from_utf8_lossy(target).into_owned();
    match entry_name(target) {
        Ok(Some(name)) => Ok(name),
        _ => Err(ArchiveError::BadLink {
            entry: entry.to_owned(),
            target: shown,
            reason: "outside the archive",
        }),
    }
}

/// Follows symlinks from `name` until a name that is not one. `None` on a loop.
pub(super) fn follow<'a>(links: &'a HashMap<String, String>, name: &'a str) -> Option<&'a str> {
    let mut cur = name;
    for _ in 0..MAX_LINK_HOPS {
        match links.get(cur) {
            Some(next) => cur = next,
            None => return Some(cur),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_are_normalised_and_checked() {
        assert_eq!(entry_name(b"./a//b/").unwrap().as_deref(), Some("a/b"));
        assert_eq!(entry_name(b"./").unwrap(), None);
        assert_eq!(
            entry_name(b"manifest.json").unwrap().as_deref(),
            Some("manifest.json")
        );
        for bad in [
            &b"/etc/passwd"[..],
            b"../x",
            b"a/../../x",
            b"a/../b",
            b"\xff",
        ] {
            assert!(
                matches!(entry_name(bad), Err(ArchiveError::Hostile { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn symlinks_stay_inside() {
        assert_eq!(
            symlink_target("abc/layer.tar", b"../def/layer.tar").unwrap(),
            "def/layer.tar"
        );
        assert_eq!(symlink_target("a/b", b"c").unwrap(), "a/c");
        for bad in [&b"/etc/passwd"[..], b"../../x", b".."] {
            assert!(
                matches!(
                    symlink_target("abc/layer.tar", bad),
                    Err(ArchiveError::BadLink { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(hardlink_target("x", b"./a/b").unwrap(), "a/b");
        assert!(hardlink_target("x", b"../a").is_err());
    }

    #[test]
    fn following_stops_at_loops() {
        let mut links = HashMap::new();
        links.insert("a".to_owned(), "b".to_owned());
        links.insert("b".to_owned(), "c".to_owned());
        assert_eq!(follow(&links, "a"), Some("c"));
        links.insert("c".to_owned(), "a".to_owned());
        assert_eq!(follow(&links, "a"), None);
    }
}
