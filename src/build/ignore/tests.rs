//! moby/patternmatcher's test tables (tests/build/ignore/, Apache-2.0) and Docker-derived
//! cases for the walker's questions.

use std::path::PathBuf;

use super::*;

fn data(name: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/build/ignore", name]
        .iter()
        .collect();
    fs_err::read_to_string(&path).expect("test data is in the repository")
}

/// Rows of a table: (line number, columns).
fn rows(name: &str) -> Vec<(usize, Vec<String>)> {
    data(name)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.is_empty())
        .map(|(i, l)| (i + 1, l.split('\t').map(str::to_string).collect()))
        .collect()
}

fn matcher(patterns: &[&str]) -> Result<Matcher, IgnoreError> {
    Matcher::new(
        patterns
            .iter()
            .enumerate()
            .map(|(i, p)| (i + 1, p.to_string()))
            .collect(),
    )
}

/// TestMatches: MatchesOrParentMatches with the path as given (not cleaned).
#[test]
fn patternmatcher_matches_table() {
    let mut failures = Vec::new();
    let table = rows("matches.tsv");
    for (line, cols) in &table {
        let [pattern, path, want] = cols.as_slice() else {
            panic!("matches.tsv:{line}: three columns");
        };
        let m = matcher(&[pattern]).unwrap_or_else(|e| panic!("matches.tsv:{line}: {e}"));
        let got = m.matches_or_parent_matches(path);
        if got.to_string() != *want {
            failures.push(format!("line {line}: {pattern:?} on {path:?} gave {got}"));
        }
    }
    assert!(table.len() > 60);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn patternmatcher_multi_pattern_table() {
    let mut failures = Vec::new();
    let table = rows("multi.tsv");
    for (line, cols) in &table {
        let [patterns, path, want] = cols.as_slice() else {
            panic!("multi.tsv:{line}: three columns");
        };
        let list: Vec<&str> = patterns.split(' ').filter(|p| !p.is_empty()).collect();
        let m = matcher(&list).unwrap_or_else(|e| panic!("multi.tsv:{line}: {e}"));
        let got = m.is_excluded(path);
        if got.to_string() != *want {
            failures.push(format!("line {line}: {list:?} on {path:?} gave {got}"));
        }
    }
    assert!(table.len() > 10);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// matchTests (Go's filepath.Match cases), through the package-level `Matches`, which
/// cleans the path and refuses malformed patterns.
#[test]
fn patternmatcher_filepath_match_table() {
    let mut failures = Vec::new();
    let table = rows("filepath-match.tsv");
    for (line, cols) in &table {
        let [pattern, path, want] = cols.as_slice() else {
            panic!("filepath-match.tsv:{line}: three columns");
        };
        let got = match matcher(&[pattern]) {
            Err(_) => "error".to_string(),
            Ok(m) => m.is_excluded(path).to_string(),
        };
        if got != *want {
            failures.push(format!(
                "line {line}: {pattern:?} on {path:?} gave {got}, want {want}"
            ));
        }
    }
    assert!(table.len() > 50);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ignorefile_read_all() {
    let got: Vec<String> = read_patterns(&data("readall.dockerignore"))
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let want: Vec<String> = data("readall.expected")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(got, want);
    let err = Matcher::parse(&data("readall.dockerignore")).unwrap_err();
    assert_eq!(
        err.to_string(),
        ".dockerignore:8: illegal exclusion pattern: \"!\" (write the path to re-include after the !)"
    );
}

#[test]
fn comments_blank_lines_and_cleaning() {
    let m = Matcher::parse(
        "\u{feff}# comment\n\n  /logs/  \n./tmp//cache/.\n  # not a comment\r\n*.md\n!README.md\n",
    )
    .expect("parses");
    assert!(m.is_excluded("logs"));
    assert!(m.is_excluded("logs/today.txt"));
    assert!(m.is_excluded("tmp/cache/x"));
    assert!(!m.is_excluded("tmp/other"));
    assert!(m.is_excluded("# not a comment"));
    assert!(m.is_excluded("CHANGES.md"));
    assert!(!m.is_excluded("README.md"));
    // A pattern without a slash matches at the top only, unlike .gitignore.
    assert!(!m.is_excluded("docs/guide.md"));
    assert!(!m.is_excluded("."));
    assert!(!m.is_excluded(""));
}

#[test]
fn later_lines_win() {
    let m = matcher(&["a", "!a"]).expect("parses");
    assert!(!m.is_excluded("a"));
    let m = matcher(&["!a", "a"]).expect("parses");
    assert!(m.is_excluded("a"));
    let m = matcher(&["*.go", "!main.go", "main.go"]).expect("parses");
    assert!(m.is_excluded("main.go"));
}

#[test]
fn bad_patterns_name_their_line() {
    let err = Matcher::parse("ok\n[abc\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        ".dockerignore:2: syntax error in pattern \"[abc\" (check its [ ] brackets and \\ escapes)"
    );
}

#[test]
fn excluded_directories_the_walker_can_skip() {
    let m = matcher(&["node_modules", ".git"]).expect("parses");
    assert_eq!(m.check("node_modules", true), Verdict::SkipDir);
    assert_eq!(m.check("node_modules/x/y.js", false), Verdict::Exclude);
    assert_eq!(m.check("src", true), Verdict::Include);

    // An exception below an excluded directory keeps it walked.
    let m = matcher(&["docs", "!docs/README.md"]).expect("parses");
    assert_eq!(m.check("docs", true), Verdict::Exclude);
    assert_eq!(m.check("docs/README.md", false), Verdict::Include);
    assert_eq!(m.check("docs/other.md", false), Verdict::Exclude);
    assert_eq!(m.check("docs/sub", true), Verdict::SkipDir);

    // Everything out, one tree back in.
    let m = matcher(&["*", "!src/**"]).expect("parses");
    assert_eq!(m.check("src", true), Verdict::Exclude);
    assert_eq!(m.check("src/main.rs", false), Verdict::Include);
    assert_eq!(m.check("target", true), Verdict::SkipDir);

    // An exception with wildcards could match below any excluded directory.
    let m = matcher(&["build", "!**/keep.txt"]).expect("parses");
    assert_eq!(m.check("build", true), Verdict::Exclude);
    assert_eq!(m.check("build/keep.txt", false), Verdict::Include);
    assert_eq!(m.check("build/other.txt", false), Verdict::Exclude);
}
