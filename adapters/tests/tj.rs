//! The Tianjin dialect: round trips, names, code tables, encoding, and
//! hostile XML refused with its error code.

use adapters::tj::{self, Tj};
use adapters::xml::XmlDialect;
use adapters::{Dialect, Limits};
use contracts::record::{CodeSet, Schema, Shape};
use contracts::sample::{self, Rng};
use contracts::{ErrorCode, Infno, Request};
use std::collections::HashSet;

const LIMITS: Limits = Limits::DEFAULT;

fn gb(text: &str) -> Vec<u8> {
    encoding_rs::GB18030.encode(text).0.into_owned()
}

/// A 2207 request whose `<SJ>` holds `data` (tj element text), in GB18030.
fn request_with(data: &str) -> Vec<u8> {
    gb(&format!(
        "<?xml version=\"1.0\" encoding=\"GB18030\"?>\n<QQBW><JYBH>2207</JYBH><BWID>H11010500123202611250930150011</BWID>\
         <JYDQH>110000</JYDQH><CBDQH>130600</CBDQH><DDJGBH>H11010500123</DDJGBH><SRCS><SJ>{data}</SJ></SRCS></QQBW>"
    ))
}

fn refused(bytes: &[u8]) -> ErrorCode {
    match Tj.decode_request(bytes, &LIMITS) {
        Ok(_) => panic!("accepted: {}", String::from_utf8_lossy(bytes)),
        Err(refusal) => refusal.code,
    }
}

fn sample_request() -> Request {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../contracts/fixtures/national/2207-request.json"
    ))
    .unwrap_or_default();
    adapters::national::decode_request(&bytes, &LIMITS).unwrap_or_else(|r| panic!("{r}"))
}

#[test]
fn a_minimal_request_decodes() {
    let request = Tj.decode_request(
        &request_with("<GRBH>130</GRBH><YLFZE>100.2</YLFZE><YLLB>PT</YLLB>"),
        &LIMITS,
    );
    let request = request.unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(request.infno(), Infno::OutpatientSettle);
    let contracts::RequestBody::OutpatientSettle(body) = &request.input else {
        panic!("wrong body")
    };
    assert_eq!(body.data.psn_no.as_deref(), Some("130"));
    assert_eq!(body.data.medfee_sumamt.map(|m| m.fen()), Some(10020));
    assert_eq!(body.data.med_type.as_ref().map(|m| m.code()), Some("11"));
}

#[test]
fn every_field_of_every_schema_has_a_distinct_tj_name() {
    fn walk(schema: &'static Schema, seen: &mut HashSet<&'static str>, unnamed: &mut Vec<String>) {
        if !seen.insert(schema.name) {
            return;
        }
        let mut names = HashSet::new();
        for (index, def) in schema.fields.iter().enumerate() {
            let wire = Tj::wire_name(schema, index);
            if !wire.prefix.is_empty() {
                unnamed.push(format!("{}.{}", schema.name, def.name));
            }
            assert!(
                names.insert(wire.to_text()),
                "{}: two fields named {}",
                schema.name,
                wire.to_text()
            );
            assert_eq!(Tj::field_index(schema, &wire.to_text()), Some(index));
            if let Shape::Record(child) | Shape::List(child) = def.shape {
                walk(child(), seen, unnamed);
            }
        }
    }
    let mut seen = HashSet::new();
    let mut unnamed = Vec::new();
    for &infno in Infno::ALL {
        walk(infno.input_schema(), &mut seen, &mut unnamed);
        walk(infno.output_schema(), &mut seen, &mut unnamed);
    }
    use contracts::record::RecordType;
    walk(
        contracts::model::envelope::RequestEnvelope::static_schema(),
        &mut seen,
        &mut unnamed,
    );
    walk(
        contracts::model::envelope::AnswerEnvelope::static_schema(),
        &mut seen,
        &mut unnamed,
    );
    assert!(unnamed.is_empty(), "fields without a tj name: {unnamed:?}");
    // One table: a tj name means one national field everywhere.
    let tj_names: HashSet<&str> = tj::NAMES.iter().map(|(_, t, _)| *t).collect();
    assert_eq!(tj_names.len(), tj::NAMES.len());
    let frame = Tj::FRAME;
    for reserved in [
        frame.request_root,
        frame.answer_root,
        frame.infno,
        frame.input,
        frame.output,
        "ROW",
        "Ext",
    ] {
        assert!(!tj_names.contains(reserved), "{reserved} is structural");
    }
    for (national, tj_name, _) in tj::NAMES {
        assert_eq!(tj::national_name(tj_name), Some(*national));
        assert!(tj_name.bytes().all(|b| b.is_ascii_uppercase()), "{tj_name}");
    }
}

#[test]
fn the_fallback_rule_names_unmapped_fields_and_only_them() {
    use contracts::record::RecordType;
    let schema = contracts::model::settlement::SetlInfo::static_schema();
    // A field with a table name is not reachable by its fallback name.
    assert_eq!(Tj::field_index(schema, "N_psn_no"), None);
    assert_eq!(Tj::field_index(schema, "GRBH"), schema.index_of("psn_no"));
}

#[test]
fn code_tables_are_bijections_with_an_escape() {
    for (set, known) in [
        (CodeSet::Insutype, contracts::Insutype::KNOWN),
        (CodeSet::MedType, contracts::MedType::KNOWN),
    ] {
        let table = Tj::codes(set).unwrap_or_else(|| panic!("{set:?} has a table"));
        let wire: HashSet<&str> = table.pairs.iter().map(|(_, w)| *w).collect();
        assert_eq!(wire.len(), table.pairs.len());
        for code in known {
            let w = table
                .to_wire(code)
                .unwrap_or_else(|| panic!("{code} has a tj code"));
            assert_eq!(table.to_national(w), Some(*code));
            assert_ne!(w, *code, "tj codes are its own");
        }
    }
    let with =
        |code: &str| Tj.decode_request(&request_with(&format!("<XZLX>{code}</XZLX>")), &LIMITS);
    let insutype = |r: Result<Request, contracts::Refusal>| match r.map(|r| r.input) {
        Ok(contracts::RequestBody::OutpatientSettle(b)) => {
            Ok(b.data.insutype.map(|c| c.code().to_owned()))
        }
        Ok(_) => Ok(None),
        Err(e) => Err(e.code),
    };
    assert_eq!(insutype(with("ZG")), Ok(Some("310".into())));
    assert_eq!(insutype(with("N:399")), Ok(Some("399".into())));
    assert_eq!(
        insutype(with("N:310")),
        Err(ErrorCode::InvalidValue),
        "a known code has one spelling"
    );
    assert_eq!(
        insutype(with("310")),
        Err(ErrorCode::InvalidValue),
        "national codes are not tj codes"
    );
    assert_eq!(insutype(with("N:3 1")), Err(ErrorCode::InvalidValue));
    // An unknown national code round-trips through the escape.
    let mut request = sample_request();
    if let contracts::RequestBody::OutpatientSettle(b) = &mut request.input {
        b.data.insutype = contracts::Insutype::parse("ZG").ok();
        b.data.med_type = contracts::MedType::parse("99").ok();
    }
    let bytes = Tj.encode_request(&request);
    let text = encoding_rs::GB18030.decode(&bytes).0.into_owned();
    assert!(
        text.contains("<XZLX>N:ZG</XZLX>") && text.contains("<YLLB>N:99</YLLB>"),
        "{text}"
    );
    assert_eq!(Tj.decode_request(&bytes, &LIMITS), Ok(request));
}

#[test]
fn output_is_gb18030_declared_in_the_prolog() {
    let request = sample_request();
    let bytes = Tj.encode_request(&request);
    assert!(bytes.starts_with(b"<?xml version=\"1.0\" encoding=\"GB18030\"?>\n<QQBW>"));
    // 李收费 in GB18030.
    assert!(bytes.windows(6).any(|w| w == b"\xC0\xEE\xCA\xD5\xB7\xD1"));
    assert!(std::str::from_utf8(&bytes).is_err(), "not UTF-8");
    assert_eq!(Tj.decode_request(&bytes, &LIMITS), Ok(request));
}

#[test]
fn text_round_trips_exactly() {
    let tricky = [
        " 张伟 ",
        "a\r\nb\rc\nd\te",
        "<&>\"'",
        "𠀀𪚥 outside the BMP",
        "\u{E78D}\u{E5E5}\u{E000}\u{F8FF} private use",
        "\r",
        "  ",
        "]]>",
        "€é・（）",
    ];
    for text in tricky {
        let mut request = sample_request();
        request.envelope.fixmedins_name = Some(text.to_owned());
        request.envelope.opter_name = Some(contracts::Secret::new(text));
        request
            .envelope
            .extras
            .0
            .push(("zz".into(), serde_json::to_string(text).unwrap_or_default()));
        let bytes = Tj.encode_request(&request);
        assert_eq!(Tj.decode_request(&bytes, &LIMITS), Ok(request), "{text:?}");
    }
}

#[test]
fn readers_accept_what_xml_allows() {
    let ok = |data: &str| {
        Tj.decode_request(&request_with(data), &LIMITS)
            .map_err(|r| r.to_string())
    };
    assert!(ok("<!-- c --><GRBH><![CDATA[1<3]]>&#x41;&amp;</GRBH>").is_ok());
    assert!(ok("\n  <GRBH>1</GRBH>\n  <YLFZE>9</YLFZE>\n").is_ok());
    assert!(ok("<GRBH/>").is_ok(), "empty means absent");
    assert!(
        ok("<PSN_PAY>43.1</PSN_PAY><Ext k=\"x\">{\"a\":[1,2]}</Ext>").is_ok(),
        "unknown simple elements are kept"
    );
    let request = ok("<PSN_PAY>43.1</PSN_PAY>").unwrap_or_else(|e| panic!("{e}"));
    let contracts::RequestBody::OutpatientSettle(body) = &request.input else {
        panic!()
    };
    assert_eq!(
        body.data.extras.0,
        vec![("PSN_PAY".to_owned(), "\"43.1\"".to_owned())]
    );
}

#[test]
fn hostile_xml_is_refused_with_its_code() {
    let decl = "<?xml version=\"1.0\" encoding=\"GB18030\"?>";
    let laughs = format!(
        "{decl}<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\
         <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]><QQBW><JYBH>&lol3;</JYBH></QQBW>"
    );
    assert_eq!(refused(laughs.as_bytes()), ErrorCode::ForbiddenConstruct);
    let external = format!("{decl}<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><QQBW><JYBH>&e;</JYBH></QQBW>");
    assert_eq!(refused(external.as_bytes()), ErrorCode::ForbiddenConstruct);
    assert_eq!(
        refused(&request_with("<GRBH>&e;</GRBH>")),
        ErrorCode::ForbiddenConstruct
    );
    assert_eq!(
        refused(&request_with("<?php x?>")),
        ErrorCode::ForbiddenConstruct
    );
    // Wherever they stand: inside an element, before or after the root.
    assert_eq!(
        refused(&request_with("<!DOCTYPE x>")),
        ErrorCode::ForbiddenConstruct
    );
    let mut after = request_with("");
    after.extend_from_slice(b"\n<?php x?>");
    assert_eq!(refused(&after), ErrorCode::ForbiddenConstruct);
    let before = format!("{decl}<?php x?><QQBW><JYBH>2207</JYBH></QQBW>");
    assert_eq!(refused(before.as_bytes()), ErrorCode::ForbiddenConstruct);
    let deep = format!(
        "{decl}<QQBW>{}{}</QQBW>",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    assert_eq!(refused(deep.as_bytes()), ErrorCode::TooDeep);
    let deep_open = format!(
        "{decl}<QQBW><JYBH>2207</JYBH><SRCS><SJ>{}",
        "<GRBH>".repeat(100_000)
    );
    assert!(matches!(
        refused(deep_open.as_bytes()),
        ErrorCode::TooDeep | ErrorCode::Malformed
    ));
    // Encodings.
    let good = request_with("<GRBH>张伟</GRBH>");
    assert_eq!(
        refused(&good[40..]),
        ErrorCode::WrongEncoding,
        "no declaration"
    );
    let utf8 = encoding_rs::GB18030
        .decode(&good)
        .0
        .replace("GB18030", "UTF-8");
    assert_eq!(
        refused(utf8.as_bytes()),
        ErrorCode::WrongEncoding,
        "another declared encoding"
    );
    let gbk = encoding_rs::GB18030
        .decode(&good)
        .0
        .replace("GB18030", "GBK");
    assert_eq!(refused(&gb(&gbk)), ErrorCode::WrongEncoding);
    let mut invalid = good.clone();
    let at = invalid.len() - 20;
    invalid.splice(at..at, [0x81, 0x20]);
    assert_eq!(
        refused(&invalid),
        ErrorCode::WrongEncoding,
        "invalid GB18030"
    );
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(&good);
    assert_eq!(refused(&bom), ErrorCode::WrongEncoding);
    // Structure.
    assert_eq!(
        refused(&good[..good.len() - 10]),
        ErrorCode::Malformed,
        "unclosed tags"
    );
    assert_eq!(
        refused(&request_with("<GRBH>1</GRBH><GRBH>2</GRBH>")),
        ErrorCode::DuplicateField
    );
    assert_eq!(
        refused(&request_with("<GRBH>1</YLFZE>")),
        ErrorCode::Malformed
    );
    assert_eq!(
        refused(&request_with("<GRBH a=\"1\">1</GRBH>")),
        ErrorCode::Malformed
    );
    assert_eq!(
        refused(&request_with("<GRBH><X/></GRBH>")),
        ErrorCode::Malformed
    );
    assert_eq!(refused(&request_with("loose text")), ErrorCode::Malformed);
    assert_eq!(
        refused(&request_with("<Ext k=\"a\">not json</Ext>")),
        ErrorCode::Malformed
    );
    assert_eq!(
        refused(&request_with("<Ext k=\"a\">1</Ext><Ext k=\"a\">2</Ext>")),
        ErrorCode::DuplicateField
    );
    assert_eq!(
        refused(&request_with("<Ext k=\"psn_no\">1</Ext>")),
        ErrorCode::Malformed,
        "an extra may not shadow a field"
    );
    assert_eq!(
        refused(&request_with("<X><Y>1</Y></X>")),
        ErrorCode::Malformed
    );
    // Values: never through floating point, never guessed.
    for bad in [
        "1e3", "0.001", "-0", "１２", "12.345", "NaN", " 5", "+5", ".5",
    ] {
        assert_eq!(
            refused(&request_with(&format!("<YLFZE>{bad}</YLFZE>"))),
            ErrorCode::InvalidValue,
            "{bad}"
        );
    }
    for bad in ["2026-11-25", "202611251", "20261325"] {
        let at = format!("<QQBW><JYBH>2207</JYBH><JYSJ>{bad}</JYSJ></QQBW>");
        assert_eq!(
            refused(&gb(&format!("{decl}{at}"))),
            ErrorCode::InvalidValue,
            "{bad}"
        );
    }
    let unknown = format!("{decl}<QQBW><JYBH>9999</JYBH></QQBW>");
    assert_eq!(refused(unknown.as_bytes()), ErrorCode::UnknownTransaction);
    let late = format!("{decl}<QQBW><SRCS/><JYBH>2207</JYBH></QQBW>");
    assert_eq!(refused(late.as_bytes()), ErrorCode::Malformed);
    let twice = format!("{decl}<QQBW><JYBH>2207</JYBH><SRCS/><SRCS/></QQBW>");
    assert_eq!(refused(twice.as_bytes()), ErrorCode::DuplicateField);
    let wrong_root = format!("{decl}<YDBW><JYBH>2207</JYBH></YDBW>");
    assert_eq!(refused(wrong_root.as_bytes()), ErrorCode::Malformed);
    let two_roots = format!("{decl}<QQBW><JYBH>2207</JYBH></QQBW><QQBW/>");
    assert_eq!(refused(two_roots.as_bytes()), ErrorCode::Malformed);
}

#[test]
fn limits_are_enforced() {
    let rows = "<ROW><FYMXLSH>1</FYMXLSH></ROW>".repeat(11);
    let upload = gb(&format!(
        "<?xml version=\"1.0\" encoding=\"GB18030\"?><QQBW><JYBH>2204</JYBH><SRCS><FYMX>{rows}</FYMX></SRCS></QQBW>"
    ));
    let small = Limits {
        items_max: 10,
        ..Limits::DEFAULT
    };
    assert_eq!(
        Tj.decode_request(&upload, &small).map_err(|r| r.code).err(),
        Some(ErrorCode::TooMany)
    );
    assert!(Tj.decode_request(&upload, &LIMITS).is_ok());
    let tiny = Limits {
        body_bytes_max: 100,
        ..Limits::DEFAULT
    };
    assert_eq!(
        Tj.decode_request(&upload, &tiny).map_err(|r| r.code).err(),
        Some(ErrorCode::TooLarge)
    );
    let refusal = Tj.decode_request(
        &gb(&String::from_utf8_lossy(&upload)
            .replace("<FYMXLSH>1</FYMXLSH></ROW>", "<SL>1e3</SL></ROW>")),
        &LIMITS,
    );
    let refusal = refusal.err().unwrap_or_else(|| panic!("accepted"));
    assert_eq!(
        refusal.detail, "input.feedetail[0].cnt: not a plain decimal number",
        "the path, never the value"
    );
}

#[test]
fn answers_decode_and_name_what_is_missing() {
    let decl = "<?xml version=\"1.0\" encoding=\"GB18030\"?>";
    let none = format!("{decl}<YDBW><JYZTM>-1</JYZTM><CWXX>人员未参保</CWXX></YDBW>");
    let answer = Tj
        .decode_answer(Infno::OutpatientSettle, &gb(&none), &LIMITS)
        .unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(answer.envelope.infcode, Some(-1));
    assert!(answer.output.is_none());
    let empty = format!("{decl}<YDBW><JYZTM>0</JYZTM><SCCS/></YDBW>");
    let answer = Tj
        .decode_answer(Infno::Reversal, &gb(&empty), &LIMITS)
        .unwrap_or_else(|r| panic!("{r}"));
    assert!(answer.output.is_some());
    let missing = format!("{decl}<YDBW><CWXX>x</CWXX></YDBW>");
    assert_eq!(
        Tj.decode_answer(Infno::Reversal, &gb(&missing), &LIMITS)
            .map_err(|r| r.code)
            .err(),
        Some(ErrorCode::MissingField)
    );
}

/// A sampled answer with a result code: every dialect (national first)
/// refuses an answer without `infcode`, which `sample::answer` leaves out at
/// times.
fn answered(mut answer: contracts::Answer) -> contracts::Answer {
    answer.envelope.infcode.get_or_insert(0);
    answer
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    #[test]
    fn sampled_messages_round_trip(seed in proptest::prelude::any::<u64>(), which in 0..Infno::ALL.len()) {
        let infno = Infno::ALL[which];
        let mut rng = Rng::new(seed);
        let request = sample::request(infno, &mut rng);
        proptest::prop_assert_eq!(Tj.decode_request(&Tj.encode_request(&request), &LIMITS), Ok(request));
        let answer = answered(sample::answer(infno, &mut rng));
        proptest::prop_assert_eq!(Tj.decode_answer(infno, &Tj.encode_answer(Some(infno), &answer), &LIMITS), Ok(answer));
    }

    #[test]
    fn any_bytes_are_refused_or_read_without_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        let mut doc = b"<?xml version=\"1.0\" encoding=\"GB18030\"?><QQBW><JYBH>2207</JYBH><SRCS><SJ>".to_vec();
        doc.extend_from_slice(&bytes);
        let _ = Tj.decode_request(&doc, &LIMITS);
        let _ = Tj.decode_answer(Infno::OutpatientSettle, &bytes, &LIMITS);
    }
}

#[test]
fn extras_nest_no_deeper_than_national_can_read() {
    let national = adapters::dialect("national").unwrap_or_else(|r| panic!("{r}"));
    // `input.data` sits at depth 3 in national JSON: 29 more levels fit in 32.
    let fits = format!("<Ext k=\"x\">{}{}</Ext>", "[".repeat(29), "]".repeat(29));
    let request = Tj
        .decode_request(&request_with(&fits), &LIMITS)
        .unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(
        national.decode_request(&national.encode_request(&request), &LIMITS),
        Ok(request)
    );
    let deeper = format!("<Ext k=\"x\">{}{}</Ext>", "[".repeat(30), "]".repeat(30));
    assert_eq!(refused(&request_with(&deeper)), ErrorCode::Malformed);
}
