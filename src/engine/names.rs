//! Docker-style random container names ("focused_turing").

const LEFT: &[&str] = &[
    "admiring",
    "brave",
    "busy",
    "clever",
    "cool",
    "dazzling",
    "eager",
    "elegant",
    "festive",
    "focused",
    "gallant",
    "gifted",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "loving",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "zealous",
];

const RIGHT: &[&str] = &[
    "albattani",
    "babbage",
    "bardeen",
    "curie",
    "darwin",
    "dijkstra",
    "euclid",
    "fermi",
    "galileo",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamarr",
    "lovelace",
    "meitner",
    "newton",
    "noether",
    "pasteur",
    "ritchie",
    "shannon",
    "thompson",
    "turing",
    "wozniak",
    "yalow",
];

/// A name from two random bytes of `id` (already random), with a numeric suffix when
/// `taken` says the plain one is in use.
pub fn generate(id: &str, taken: &dyn Fn(&str) -> bool) -> String {
    let byte = |i: usize| usize::from_str_radix(id.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0);
    let base = format!(
        "{}_{}",
        LEFT[byte(0) % LEFT.len()],
        RIGHT[byte(2) % RIGHT.len()]
    );
    if !taken(&base) {
        return base;
    }
    (1..)
        .map(|n| format!("{base}{n}"))
        .find(|candidate| !taken(candidate))
        .expect("an unused suffix exists")
}

/// Docker's rule for names given with --name.
pub fn valid(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_avoid_taken_ones() {
        let a = generate("0a1b", &|_| false);
        assert!(a.contains('_'));
        assert_eq!(generate("0a1b", &|n| n == a), format!("{a}1"));
    }

    #[test]
    fn docker_name_rule() {
        assert!(valid("web-1.a_b"));
        assert!(!valid("-web"));
        assert!(!valid("a b"));
        assert!(!valid(""));
    }
}
