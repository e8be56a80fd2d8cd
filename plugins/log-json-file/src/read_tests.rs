use super::*;
use crate::rotate::LogWriter;
use burrow_plugin_sdk::log::Kv;
use std::fs;
use std::io::Write;

/// A 9-digit fraction keeps every line the same length (79 bytes: two fit in 150).
const T: u64 = 1_795_333_754_100_000_001;

fn entry(i: u64) -> Entry {
    Entry {
        time_ns: T + i * 1000,
        source: Source::Stdout,
        line: format!("line {i:03}").into_bytes(),
        partial: None,
        attrs: vec![],
    }
}

fn cfg(max_size: Option<u64>, max_file: u32, compress: bool) -> Config {
    Config {
        max_size,
        max_file,
        compress,
    }
}

fn ro(since: Option<u64>, until: Option<u64>, tail: Option<u32>) -> ReadOpts {
    ReadOpts {
        since_ns: since,
        until_ns: until,
        tail,
    }
}

fn lines(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8(e.line.clone()).unwrap())
        .collect()
}

fn numbers(entries: &[Entry]) -> Vec<u64> {
    lines(entries)
        .iter()
        .map(|l| l.trim_start_matches("line ").parse().unwrap())
        .collect()
}

fn read_all(r: &mut LogReader) -> Vec<Entry> {
    let mut all = Vec::new();
    loop {
        let got = r.next(3).unwrap();
        assert!(got.len() <= 3);
        if got.is_empty() {
            return all;
        }
        all.extend(got);
    }
}

/// Writes entries `range` one per batch, so rotation happens between them.
fn write(w: &mut LogWriter, range: std::ops::Range<u64>) {
    for i in range {
        w.write(&[entry(i)]).unwrap();
    }
}

#[test]
fn reads_rotated_gz_and_current_oldest_first() {
    for compress in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(Some(150), 3, compress);
        let mut w = LogWriter::open(dir.path(), "c", c, &[]).unwrap();
        write(&mut w, 0..9);
        let mut r = LogReader::open(dir.path(), "c", c, &ro(None, None, None)).unwrap();
        let got = read_all(&mut r);
        // Two lines a file, three files: 4 5 | 6 7 | 8.
        assert_eq!(numbers(&got), [4, 5, 6, 7, 8], "compress={compress}");
        assert!(
            got.iter()
                .all(|e| e.partial.is_none() && e.attrs.is_empty())
        );
        assert_eq!(got[0].time_ns, T + 4000);
    }
}

#[test]
fn attrs_and_streams_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let attrs = vec![Kv {
        key: "tag".into(),
        value: "jf1/x".into(),
    }];
    let mut w = LogWriter::open(dir.path(), "c", Config::default(), &attrs).unwrap();
    let mut e = entry(1);
    e.source = Source::Stderr;
    w.write(&[e]).unwrap();
    let mut r = LogReader::open(dir.path(), "c", Config::default(), &ro(None, None, None)).unwrap();
    let got = r.next(10).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].source, Source::Stderr);
    let back: Vec<(&str, &str)> = got[0]
        .attrs
        .iter()
        .map(|kv| (&*kv.key, &*kv.value))
        .collect();
    assert_eq!(back, [("tag", "jf1/x")]);
}

#[test]
fn partial_chunks_are_numbered_per_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = LogWriter::open(dir.path(), "c", Config::default(), &[]).unwrap();
    let chunk = |line: &str, source, last: Option<bool>| Entry {
        time_ns: T,
        source,
        line: line.into(),
        partial: last.map(|last| Partial {
            id: "host-id".into(),
            ordinal: 9,
            last,
        }),
        attrs: vec![],
    };
    w.write(&[
        chunk("AAAA", Source::Stdout, Some(false)),
        chunk("err", Source::Stderr, None),
        chunk("BBBB", Source::Stdout, Some(false)),
        chunk("CC", Source::Stdout, Some(true)),
        chunk("tail-no-nl", Source::Stdout, Some(false)),
    ])
    .unwrap();
    let mut r = LogReader::open(dir.path(), "c", Config::default(), &ro(None, None, None)).unwrap();
    let got = r.next(10).unwrap();
    assert_eq!(lines(&got), ["AAAA", "err", "BBBB", "CC", "tail-no-nl"]);
    let p: Vec<Option<(u32, bool)>> = got
        .iter()
        .map(|e| e.partial.as_ref().map(|p| (p.ordinal, p.last)))
        .collect();
    assert_eq!(
        p,
        [
            Some((1, false)),
            None,
            Some((2, false)),
            Some((3, true)),
            Some((1, false))
        ]
    );
    let id = |i: usize| got[i].partial.as_ref().unwrap().id.clone();
    assert_eq!(id(0), id(2));
    assert_eq!(id(0), id(3));
}

#[test]
fn tail_counts_lines_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(Some(150), 4, true);
    let mut w = LogWriter::open(dir.path(), "c", c, &[]).unwrap();
    write(&mut w, 0..9); // 2 3 | 4 5 | 6 7 | 8
    let tail = |n| {
        numbers(&read_all(
            &mut LogReader::open(dir.path(), "c", c, &ro(None, None, Some(n))).unwrap(),
        ))
    };
    assert_eq!(tail(0), Vec::<u64>::new());
    assert_eq!(tail(1), [8]);
    assert_eq!(tail(2), [7, 8]);
    assert_eq!(tail(4), [5, 6, 7, 8]);
    assert_eq!(tail(7), [2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(tail(100), [2, 3, 4, 5, 6, 7, 8]);
}

#[test]
fn tail_in_one_big_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = LogWriter::open(dir.path(), "c", Config::default(), &[]).unwrap();
    // Long enough to span several 64 KiB scan chunks.
    let batch: Vec<Entry> = (0..3000).map(entry).collect();
    w.write(&batch).unwrap();
    let mut r = LogReader::open(
        dir.path(),
        "c",
        Config::default(),
        &ro(None, None, Some(1500)),
    )
    .unwrap();
    let got = numbers(&read_all(&mut r));
    assert_eq!(got, (1500..3000).collect::<Vec<_>>());
}

#[test]
fn since_stops_filtering_at_the_first_match_and_until_ends_the_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = LogWriter::open(dir.path(), "c", Config::default(), &[]).unwrap();
    // Timestamps out of order: 0 5 3 6 2 9 4.
    let order = [0u64, 5, 3, 6, 2, 9, 4];
    let batch: Vec<Entry> = order
        .iter()
        .map(|&i| {
            let mut e = entry(i);
            e.time_ns = T + i;
            e
        })
        .collect();
    w.write(&batch).unwrap();
    let read = |o: ReadOpts| {
        numbers(&read_all(
            &mut LogReader::open(dir.path(), "c", Config::default(), &o).unwrap(),
        ))
    };
    assert_eq!(read(ro(Some(T + 5), None, None)), [5, 3, 6, 2, 9, 4]);
    assert_eq!(read(ro(Some(T + 4), None, None)), [5, 3, 6, 2, 9, 4]);
    assert_eq!(read(ro(None, Some(T + 5), None)), [0, 5, 3]);
    assert_eq!(read(ro(Some(T + 3), Some(T + 6), None)), [5, 3, 6, 2]);
    // tail picks the lines first, then since filters them (moby's order).
    assert_eq!(read(ro(Some(T + 6), None, Some(3))), [9, 4]);
}

#[test]
fn until_is_final_even_when_more_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = LogWriter::open(dir.path(), "c", Config::default(), &[]).unwrap();
    write(&mut w, 0..3);
    let mut r = LogReader::open(
        dir.path(),
        "c",
        Config::default(),
        &ro(None, Some(T + 1000), None),
    )
    .unwrap();
    assert_eq!(numbers(&read_all(&mut r)), [0, 1]);
    write(&mut w, 3..5);
    assert!(r.next(10).unwrap().is_empty());
}

#[test]
fn gz_files_older_than_since_are_skipped_by_their_header() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(Some(150), 3, true);
    let mut w = LogWriter::open(dir.path(), "c", c, &[]).unwrap();
    write(&mut w, 0..5); // 0 1 (gone) | 2 3 (.1.gz, lastTime 3) | 4
    // Corrupt the body of .1.gz but keep its header: if it were decompressed, reading fails.
    let gz = dir.path().join("c-json.log.1.gz");
    let mut raw = fs::read(&gz).unwrap();
    let hdr = 12 + u16::from_le_bytes([raw[10], raw[11]]) as usize;
    raw.truncate(hdr);
    raw.extend_from_slice(b"garbage");
    fs::write(&gz, raw).unwrap();
    let mut r = LogReader::open(dir.path(), "c", c, &ro(Some(T + 3500), None, None)).unwrap();
    assert_eq!(numbers(&read_all(&mut r)), [4]);
}

#[test]
fn follows_appends_and_waits_for_a_line_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = LogReader::open(dir.path(), "c", Config::default(), &ro(None, None, None)).unwrap();
    // No file yet (container never started): caught up, not an error.
    assert!(r.next(10).unwrap().is_empty());
    let mut w = LogWriter::open(dir.path(), "c", Config::default(), &[]).unwrap();
    write(&mut w, 0..2);
    assert_eq!(numbers(&read_all(&mut r)), [0, 1]);
    // Half a line: not returned until its newline lands.
    let path = dir.path().join("c-json.log");
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(br#"{"log":"line 002\n","stream":"std"#)
        .unwrap();
    assert!(r.next(10).unwrap().is_empty());
    f.write_all(b"out\",\"time\":\"2026-11-22T07:49:14Z\"}\n")
        .unwrap();
    assert_eq!(numbers(&r.next(10).unwrap()), [2]);
}

#[test]
fn tail_zero_then_follow_sees_only_new_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = LogWriter::open(dir.path(), "c", Config::default(), &[]).unwrap();
    write(&mut w, 0..3);
    let mut r =
        LogReader::open(dir.path(), "c", Config::default(), &ro(None, None, Some(0))).unwrap();
    assert!(r.next(10).unwrap().is_empty());
    write(&mut w, 3..4);
    assert_eq!(numbers(&r.next(10).unwrap()), [3]);
}

#[test]
fn following_survives_rotation() {
    for (max_file, compress) in [(3, false), (3, true), (1, false)] {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(Some(150), max_file, compress);
        let mut w = LogWriter::open(dir.path(), "c", c, &[]).unwrap();
        let mut r = LogReader::open(dir.path(), "c", c, &ro(None, None, None)).unwrap();
        let mut seen = Vec::new();
        // One entry at a time with a read after each: every rotation happens under the reader.
        for i in 0..12 {
            write(&mut w, i..i + 1);
            seen.extend(numbers(&read_all(&mut r)));
        }
        assert_eq!(
            seen,
            (0..12).collect::<Vec<_>>(),
            "max-file={max_file} compress={compress}"
        );
    }
}

#[test]
fn following_recovers_rotations_it_slept_through() {
    for compress in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(Some(150), 5, compress);
        let mut w = LogWriter::open(dir.path(), "c", c, &[]).unwrap();
        let mut r = LogReader::open(dir.path(), "c", c, &ro(None, None, None)).unwrap();
        write(&mut w, 0..1);
        assert_eq!(numbers(&read_all(&mut r)), [0]);
        // Three rotations before the next read: 0 1 | 2 3 | 4 5 | 6.
        write(&mut w, 1..7);
        assert_eq!(
            numbers(&read_all(&mut r)),
            [1, 2, 3, 4, 5, 6],
            "compress={compress}"
        );
    }
}

#[test]
fn malformed_lines_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("c-json.log"),
        "not json\n{\"log\":\"ok\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-22T07:49:14Z\"}\n\n",
    )
    .unwrap();
    let mut r = LogReader::open(dir.path(), "c", Config::default(), &ro(None, None, None)).unwrap();
    assert_eq!(lines(&read_all(&mut r)), ["ok"]);
}

#[test]
fn reads_dockerd_written_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let capture = concat!(
        r#"{"log":"err1\n","stream":"stderr","attrs":{"E1":"x","a":"1","b":"2","tag":"jf1/local/bb:1/d343ff63cae3"},"time":"2026-11-22T07:48:58.969041395Z"}"#,
        "\n",
        r#"{"log":"ctl\u0001 bad\ufffd ls\u2028 x\n","stream":"stdout","attrs":{"E1":"x"},"time":"2026-11-22T07:48:58.969075349Z"}"#,
        "\n",
        r#"{"log":"no-newline-at-end","stream":"stdout","attrs":{"E1":"x"},"time":"2026-11-22T07:48:59.006624166Z"}"#,
        "\n"
    );
    fs::write(dir.path().join("d343-json.log"), capture).unwrap();
    let mut r = LogReader::open(
        dir.path(),
        "d343",
        Config::default(),
        &ro(None, None, Some(2)),
    )
    .unwrap();
    let got = read_all(&mut r);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].line, "ctl\x01 bad\u{fffd} ls\u{2028} x".as_bytes());
    assert_eq!(got[0].time_ns, 1_795_333_738_969_075_349);
    assert_eq!(got[1].line, b"no-newline-at-end");
    assert!(
        got[1]
            .partial
            .as_ref()
            .is_some_and(|p| !p.last && p.ordinal == 1)
    );
}
