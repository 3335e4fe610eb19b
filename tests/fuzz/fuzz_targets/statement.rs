//! Fuzzes the statement reader: after a header (the columns in an order the
//! first byte picks, and a column of the platform's own), any bytes are read
//! by `Layout::parse_lines`, as reconciliation does, and line by line by
//! `Layout::parse`; both give the same rows, line numbers and places, or the
//! same first refusal, without a panic; and `Reader` agrees on the rows.
#![no_main]

use contracts::statement::{Layout, Reader, Row, StatementError, COLUMNS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&rotate, body)) = data.split_first() else {
        return;
    };
    let mut names: Vec<&str> = COLUMNS.iter().copied().chain(["note"]).collect();
    let width = names.len();
    names.rotate_left(usize::from(rotate) % width);
    let header = names.join(",");
    let Ok(layout) = Layout::from_header(header.as_bytes()) else {
        panic!("the header is well formed");
    };

    let mut together: Vec<(Row, u64, usize, usize)> = Vec::new();
    let got = layout
        .parse_lines(body, 2, |row, number, from, to| {
            together.push((row.to_row(), number, from, to));
            Ok::<(), StatementError>(())
        })
        .map(|()| together);

    let mut one_by_one = Vec::new();
    let mut spans = Vec::new();
    let (mut start, mut number) = (0, 2);
    let expected = loop {
        if start >= body.len() {
            break Ok(one_by_one);
        }
        let end = body[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |at| start + at);
        let mut line = &body[start..end];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        let mut unquoted = String::new();
        match layout.parse(line, number, &mut spans, &mut unquoted) {
            Ok(Some(row)) => one_by_one.push((row.to_row(), number, start, end)),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        (start, number) = (end + 1, number + 1);
    };
    assert_eq!(got, expected, "parse_lines must read what parse reads line by line");

    // The streaming reader, from the same bytes with the header.
    let mut text = format!("{header}\n").into_bytes();
    text.extend_from_slice(body);
    if let (Ok(rows), Ok(reader)) = (&expected, Reader::new(&text[..])) {
        let read: Result<Vec<Row>, StatementError> = reader.collect();
        let rows: Vec<Row> = rows.iter().map(|(row, ..)| row.clone()).collect();
        assert_eq!(read, Ok(rows), "Reader must read the same rows");
    }
});
