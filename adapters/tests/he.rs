//! The Hebei dialect: round trips, header, attributes, fen, code tables, and
//! hostile XML refused with its error code.

use adapters::he::He;
use adapters::xml::XmlDialect;
use adapters::{Dialect, Limits};
use contracts::record::CodeSet;
use contracts::sample::{self, Rng};
use contracts::{ErrorCode, Infno, Request, RequestBody};
use std::collections::HashSet;

const LIMITS: Limits = Limits::DEFAULT;

const HEADER: &str = r#"<Header infno="2207" msgid="H11010500123202611250930150011" sender="110000" receiver="130600" fixmedins_code="H11010500123"/>"#;

/// A 2207 request whose `<data>` element has `attributes` and `children`.
fn request_with(attributes: &str, children: &str) -> Vec<u8> {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Request>{HEADER}<Body><data {attributes}>{children}</data></Body></Request>").into_bytes()
}

fn refused(bytes: &[u8]) -> ErrorCode {
    match He.decode_request(bytes, &LIMITS) {
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

fn settle(request: &Request) -> &contracts::model::settlement::SettleRequest {
    match &request.input {
        RequestBody::OutpatientSettle(body) => &body.data,
        _ => panic!("not a 2207"),
    }
}

#[test]
fn the_header_names_sender_receiver_and_message_id() {
    let request = He.decode_request(
        &request_with(r#"psn_no="130" medfee_sumamt="10020" med_type="101""#, ""),
        &LIMITS,
    );
    let request = request.unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(
        request
            .envelope
            .mdtrtarea_admvs
            .map(|r| r.to_string())
            .as_deref(),
        Some("110000")
    );
    assert_eq!(
        request
            .envelope
            .insuplc_admdvs
            .map(|r| r.to_string())
            .as_deref(),
        Some("130600")
    );
    assert_eq!(
        request.envelope.msgid.as_deref(),
        Some("H11010500123202611250930150011")
    );
    assert_eq!(settle(&request).medfee_sumamt.map(|m| m.fen()), Some(10020));
    assert_eq!(
        settle(&request).med_type.as_ref().map(|m| m.code()),
        Some("11")
    );
    let text = String::from_utf8(He.encode_request(&sample_request())).unwrap_or_default();
    assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Request>\n<Header infno=\"2207\" msgid=\"H11010500123202611250930150011\" sender=\"110000\" receiver=\"130600\""), "{text}");
    assert!(text.contains("medfee_sumamt=\"10020\""), "{text}");
    // The national names of renamed header fields are not header names.
    let national_names = "<Request><Header infno=\"2207\" mdtrtarea_admvs=\"110000\"/></Request>";
    assert_eq!(refused(national_names.as_bytes()), ErrorCode::Malformed);
}

#[test]
fn code_tables_differ_from_tj_and_round_trip() {
    for (set, known) in [
        (CodeSet::Insutype, contracts::Insutype::KNOWN),
        (CodeSet::MedType, contracts::MedType::KNOWN),
    ] {
        let table = He::codes(set).unwrap_or_else(|| panic!("{set:?} has a table"));
        let tj = <adapters::tj::Tj as XmlDialect>::codes(set)
            .unwrap_or_else(|| panic!("{set:?} has a tj table"));
        let wire: HashSet<&str> = table.pairs.iter().map(|(_, w)| *w).collect();
        assert_eq!(wire.len(), table.pairs.len());
        for code in known {
            let w = table
                .to_wire(code)
                .unwrap_or_else(|| panic!("{code} has a he code"));
            assert_eq!(table.to_national(w), Some(*code));
            assert_ne!(w, *code);
            assert_ne!(Some(w), tj.to_wire(code));
        }
    }
    let insutype = |code: &str| match He
        .decode_request(&request_with(&format!("insutype=\"{code}\""), ""), &LIMITS)
    {
        Ok(r) => Ok(settle(&r).insutype.as_ref().map(|c| c.code().to_owned())),
        Err(e) => Err(e.code),
    };
    assert_eq!(insutype("02"), Ok(Some("390".into())));
    assert_eq!(insutype("N:399"), Ok(Some("399".into())));
    assert_eq!(insutype("N:390"), Err(ErrorCode::InvalidValue));
    assert_eq!(insutype("390"), Err(ErrorCode::InvalidValue));
}

#[test]
fn text_round_trips_exactly_through_attributes() {
    for text in [
        " 张伟 ",
        "a\r\nb\rc\nd\te",
        "<&>\"'",
        "𠀀𪚥",
        "\u{E78D}",
        "\t",
        "\n",
    ] {
        let mut request = sample_request();
        request.envelope.fixmedins_name = Some(text.to_owned());
        if let RequestBody::OutpatientSettle(body) = &mut request.input {
            body.data.mdtrt_cert_no = Some(contracts::Secret::new(text));
            body.data
                .extras
                .0
                .push(("zz".into(), serde_json::to_string(text).unwrap_or_default()));
        }
        let bytes = He.encode_request(&request);
        assert_eq!(He.decode_request(&bytes, &LIMITS), Ok(request), "{text:?}");
    }
    // A literal tab or line feed in an attribute is read as a space, as XML says.
    let read = He
        .decode_request(&request_with("psn_no=\"a\tb\nc\"", ""), &LIMITS)
        .unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(settle(&read).psn_no.as_deref(), Some("a b c"));
}

#[test]
fn unknown_attributes_and_elements_are_kept() {
    let read = He.decode_request(
        &request_with(
            "psn_pay=\"43.1\"",
            "<Ext k=\"n\">[1,null]</Ext><memo2>x</memo2>",
        ),
        &LIMITS,
    );
    let read = read.unwrap_or_else(|r| panic!("{r}"));
    let extras = &settle(&read).extras.0;
    assert_eq!(
        extras,
        &vec![
            ("psn_pay".to_owned(), "\"43.1\"".to_owned()),
            ("n".into(), "[1,null]".into()),
            ("memo2".into(), "\"x\"".into())
        ]
    );
    assert_eq!(
        He.decode_request(&He.encode_request(&read), &LIMITS),
        Ok(read)
    );
}

#[test]
fn hostile_xml_is_refused_with_its_code() {
    let laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;\">]><Request><Header infno=\"&lol2;\"/></Request>";
    assert_eq!(refused(laughs.as_bytes()), ErrorCode::ForbiddenConstruct);
    let external = "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><Request><Header infno=\"&e;\"/></Request>";
    assert_eq!(refused(external.as_bytes()), ErrorCode::ForbiddenConstruct);
    assert_eq!(
        refused(&request_with("psn_no=\"&e;\"", "")),
        ErrorCode::ForbiddenConstruct
    );
    let deep = format!(
        "<Request>{}{}</Request>",
        "<Body>".repeat(100_000),
        "</Body>".repeat(100_000)
    );
    assert!(matches!(
        refused(deep.as_bytes()),
        ErrorCode::TooDeep | ErrorCode::Malformed
    ));
    let deep = format!(
        "<Request>{HEADER}<Body><data>{}{}</data></Body></Request>",
        "<x>".repeat(100_000),
        "</x>".repeat(100_000)
    );
    assert_eq!(refused(deep.as_bytes()), ErrorCode::TooDeep);
    // Encodings.
    let gb_declared = String::from_utf8_lossy(&request_with("", "")).replace("UTF-8", "GB18030");
    assert_eq!(refused(gb_declared.as_bytes()), ErrorCode::WrongEncoding);
    let mut invalid = request_with("psn_no=\"张\"", "");
    let at = invalid.iter().position(|&b| b == 0xE5).unwrap_or(0);
    invalid[at + 1] = b'x';
    assert_eq!(refused(&invalid), ErrorCode::WrongEncoding);
    let gb18030_bytes = encoding_rs::GB18030
        .encode(&String::from_utf8_lossy(&request_with(
            "psn_no=\"张伟\"",
            "",
        )))
        .0
        .into_owned();
    assert_eq!(refused(&gb18030_bytes), ErrorCode::WrongEncoding);
    // Structure.
    let whole = request_with("", "");
    assert_eq!(
        refused(&whole[..whole.len() - 12]),
        ErrorCode::Malformed,
        "unclosed tags"
    );
    assert_eq!(
        refused(&request_with("psn_no=\"1\" psn_no=\"2\"", "")),
        ErrorCode::DuplicateField
    );
    let twice = format!("<Request>{HEADER}{HEADER}</Request>");
    assert_eq!(refused(twice.as_bytes()), ErrorCode::DuplicateField);
    let twice = format!("<Request>{HEADER}<Body><data/><data/></Body></Request>");
    assert_eq!(refused(twice.as_bytes()), ErrorCode::DuplicateField);
    assert_eq!(
        refused(&request_with("", "<psn_no>1</psn_no>")),
        ErrorCode::Malformed,
        "scalars are attributes"
    );
    assert_eq!(
        refused(&request_with("", "<x a=\"1\">1</x>")),
        ErrorCode::Malformed
    );
    let body_first = "<Request><Body/><Header infno=\"2207\"/></Request>";
    assert_eq!(refused(body_first.as_bytes()), ErrorCode::Malformed);
    let no_infno = "<Request><Header msgid=\"1\"/></Request>";
    assert_eq!(refused(no_infno.as_bytes()), ErrorCode::MissingField);
    // Fen are whole numbers; nothing through floating point.
    for bad in [
        "1e3", "0.001", "-0", "１２", "10.20", "NaN", "+5", " 5", "0x10",
    ] {
        assert_eq!(
            refused(&request_with(&format!("medfee_sumamt=\"{bad}\""), "")),
            ErrorCode::InvalidValue,
            "{bad}"
        );
    }
    for bad in [
        "20261125093015",
        "2026-11-25 09:30:15",
        "2026-11-25T09:30",
        "2026-11-25T24:00:00",
    ] {
        let at = format!("<Request><Header infno=\"2207\" inf_time=\"{bad}\"/></Request>");
        assert_eq!(refused(at.as_bytes()), ErrorCode::InvalidValue, "{bad}");
    }
}

#[test]
fn limits_are_enforced() {
    let lines = "<feedetail feedetl_sn=\"1\"/>".repeat(11);
    let upload =
        format!("<Request><Header infno=\"2204\"/><Body>{lines}</Body></Request>").into_bytes();
    let small = Limits {
        items_max: 10,
        ..Limits::DEFAULT
    };
    assert_eq!(
        He.decode_request(&upload, &small).map_err(|r| r.code).err(),
        Some(ErrorCode::TooMany)
    );
    let read = He
        .decode_request(&upload, &LIMITS)
        .unwrap_or_else(|r| panic!("{r}"));
    assert!(matches!(&read.input, RequestBody::OutpatientFeeUpload(b) if b.feedetail.len() == 11));
    let attributes: String = (0..129).map(|i| format!(" a{i}=\"1\"")).collect();
    assert_eq!(refused(&request_with(&attributes, "")), ErrorCode::TooMany);
    let bad = He.decode_request(
        &String::from_utf8_lossy(&upload)
            .replace("feedetl_sn=\"1\"/>", "cnt=\"1e3\"/>")
            .into_bytes(),
        &LIMITS,
    );
    let refusal = bad.err().unwrap_or_else(|| panic!("accepted"));
    assert_eq!(
        refusal.detail, "input.feedetail[0].cnt: not a plain decimal number",
        "the path, never the value"
    );
}

#[test]
fn answers_carry_the_platform_id_as_msgid() {
    let answer = "<Answer><Header infcode=\"0\" msgid=\"P1\" respond_time=\"2026-11-25T09:30:15.456\"/><Body><data trt_dcla_detl_sn=\"9\"/></Body></Answer>";
    let read = He
        .decode_answer(Infno::ChronicFiling, answer.as_bytes(), &LIMITS)
        .unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(read.envelope.inf_refmsgid.as_deref(), Some("P1"));
    assert_eq!(
        read.envelope
            .respond_time
            .map(|t| t.0.to_compact_millis())
            .as_deref(),
        Some("20261125093015456")
    );
    assert!(read.output.is_some());
    let none = "<Answer><Header infcode=\"-1\" err_msg=\"x\"/></Answer>";
    let read = He
        .decode_answer(Infno::ChronicFiling, none.as_bytes(), &LIMITS)
        .unwrap_or_else(|r| panic!("{r}"));
    assert!(read.output.is_none());
    assert_eq!(
        He.decode_answer(Infno::ChronicFiling, b"<Answer/>", &LIMITS)
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
        proptest::prop_assert_eq!(He.decode_request(&He.encode_request(&request), &LIMITS), Ok(request));
        let answer = answered(sample::answer(infno, &mut rng));
        proptest::prop_assert_eq!(He.decode_answer(infno, &He.encode_answer(Some(infno), &answer), &LIMITS), Ok(answer));
    }

    #[test]
    fn any_bytes_are_refused_or_read_without_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        let mut doc = format!("<Request>{HEADER}<Body><data ").into_bytes();
        doc.extend_from_slice(&bytes);
        let _ = He.decode_request(&doc, &LIMITS);
        let _ = He.decode_answer(Infno::OutpatientSettle, &bytes, &LIMITS);
    }
}

#[test]
fn extras_are_kept_as_national_keeps_them() {
    // Found by fuzzing: whitespace around an extra's JSON is not part of the value.
    let read = He.decode_request(
        &request_with("", "<Ext k=\"n\">\t\n [1, 2] \n</Ext>"),
        &LIMITS,
    );
    let read = read.unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(
        settle(&read).extras.0,
        vec![("n".to_owned(), "[1, 2]".to_owned())]
    );
    let national = adapters::dialect("national").unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(
        national.decode_request(&national.encode_request(&read), &LIMITS),
        Ok(read)
    );
    let crash = "<Answer>\n<Header infcode=\"0\">\n<Ext k=\"enctype\">\t\t\t\"\"</Ext>\n</Header>\n</Answer>";
    let answer = He
        .decode_answer(Infno::PharmacyPreSettle, crash.as_bytes(), &LIMITS)
        .unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(
        answer.envelope.extras.0,
        vec![("enctype".to_owned(), "\"\"".to_owned())]
    );
    assert_eq!(
        national.decode_answer(
            Infno::PharmacyPreSettle,
            &national.encode_answer(None, &answer),
            &LIMITS
        ),
        Ok(answer)
    );
}
