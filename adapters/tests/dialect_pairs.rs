//! Every dialect against every other: the checked-in fixtures of each dialect
//! are the national fixtures translated, and translation between any two
//! dialects and back is the identity, on fixtures and on sampled messages.
//!
//! `cargo test -p adapters --test dialect_pairs -- --ignored regenerate`
//! rewrites the tj and he fixtures from the national ones through the
//! encoders, and the generated parts of `contracts/dialects/`.

use adapters::{dialect, Dialect, Limits, DIALECTS};
use contracts::sample::{self, Rng};
use contracts::{Answer, Infno, Request};
use std::path::PathBuf;

const LIMITS: Limits = Limits::DEFAULT;
const XML_DIALECTS: [&str; 2] = ["tj", "he"];

fn contracts_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../contracts"))
}

fn get(name: &str) -> &'static dyn Dialect {
    dialect(name).unwrap_or_else(|r| panic!("{r}"))
}

/// A national fixture, decoded.
enum Message {
    Request(Request),
    Answer(Infno, Answer),
}

/// Every national fixture: (file stem, message). The failure answer is read as an answer to 2207.
fn national_fixtures() -> Vec<(String, Message)> {
    let national = get("national");
    let dir = contracts_dir().join("fixtures/national");
    let mut out = Vec::new();
    for &infno in Infno::ALL {
        let stem = format!("{}-request", infno.code());
        let bytes = std::fs::read(dir.join(format!("{stem}.json")))
            .unwrap_or_else(|e| panic!("{stem}: {e}"));
        let request = national
            .decode_request(&bytes, &LIMITS)
            .unwrap_or_else(|r| panic!("{stem}: {r}"));
        out.push((stem, Message::Request(request)));
        let stem = format!("{}-answer", infno.code());
        let bytes = std::fs::read(dir.join(format!("{stem}.json")))
            .unwrap_or_else(|e| panic!("{stem}: {e}"));
        let answer = national
            .decode_answer(infno, &bytes, &LIMITS)
            .unwrap_or_else(|r| panic!("{stem}: {r}"));
        out.push((stem, Message::Answer(infno, answer)));
    }
    let bytes = std::fs::read(dir.join("failure-answer.json")).unwrap_or_default();
    let answer = national
        .decode_answer(Infno::OutpatientSettle, &bytes, &LIMITS)
        .unwrap_or_else(|r| panic!("failure-answer: {r}"));
    out.push((
        "failure-answer".into(),
        Message::Answer(Infno::OutpatientSettle, answer),
    ));
    out
}

fn encode(d: &dyn Dialect, message: &Message) -> Vec<u8> {
    match message {
        Message::Request(r) => d.encode_request(r),
        Message::Answer(infno, a) => d.encode_answer(Some(*infno), a),
    }
}

/// Decodes bytes of `d` as the same kind of message as `like`, and says whether it equals `like`.
fn decodes_to(d: &dyn Dialect, bytes: &[u8], like: &Message) -> Result<bool, contracts::Refusal> {
    Ok(match like {
        Message::Request(r) => &d.decode_request(bytes, &LIMITS)? == r,
        Message::Answer(infno, a) => &d.decode_answer(*infno, bytes, &LIMITS)? == a,
    })
}

#[test]
fn every_dialect_is_registered() {
    let names: Vec<&str> = DIALECTS.iter().map(|d| d.name()).collect();
    assert_eq!(names, ["national", "tj", "he"]);
    assert!(dialect("xx").is_err());
}

#[test]
fn every_fixture_decodes_to_the_national_fixture_message() {
    let fixtures = national_fixtures();
    assert_eq!(fixtures.len(), 63);
    for name in XML_DIALECTS {
        let d = get(name);
        for (stem, message) in &fixtures {
            let path = contracts_dir().join(format!("fixtures/{name}/{stem}.xml"));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(decodes_to(d, &bytes, message), Ok(true), "{name}/{stem}");
            assert!(
                encode(d, message) == bytes,
                "{name}/{stem}.xml is not what the encoder writes: regenerate the fixtures"
            );
        }
    }
}

#[test]
fn translating_fixtures_between_any_two_dialects_and_back_is_the_identity() {
    for (stem, message) in national_fixtures() {
        for a in DIALECTS {
            assert_eq!(
                decodes_to(*a, &encode(*a, &message), &message),
                Ok(true),
                "{} {stem}",
                a.name()
            );
            for b in DIALECTS {
                // A → B → A, each step through bytes.
                let there = round(*b, &round(*a, &message));
                let back = round(*a, &there);
                assert!(
                    same(&back, &message),
                    "{} → {} → {} {stem}",
                    a.name(),
                    b.name(),
                    a.name()
                );
            }
        }
    }
}

/// Encodes in `d` and decodes again.
fn round(d: &dyn Dialect, message: &Message) -> Message {
    let bytes = encode(d, message);
    match message {
        Message::Request(_) => Message::Request(
            d.decode_request(&bytes, &LIMITS)
                .unwrap_or_else(|r| panic!("{}: {r}", d.name())),
        ),
        Message::Answer(infno, _) => Message::Answer(
            *infno,
            d.decode_answer(*infno, &bytes, &LIMITS)
                .unwrap_or_else(|r| panic!("{}: {r}", d.name())),
        ),
    }
}

fn same(a: &Message, b: &Message) -> bool {
    match (a, b) {
        (Message::Request(x), Message::Request(y)) => x == y,
        (Message::Answer(i, x), Message::Answer(j, y)) => i == j && x == y,
        _ => false,
    }
}

#[test]
fn sampled_messages_survive_every_pair() {
    for &infno in Infno::ALL {
        for seed in 0..12u64 {
            let mut rng = Rng::new(seed * 7919 + u64::from(infno.code().as_bytes()[3]));
            let messages = [
                Message::Request(sample::request(infno, &mut rng)),
                Message::Answer(infno, answered(sample::answer(infno, &mut rng))),
            ];
            for message in &messages {
                for a in DIALECTS {
                    for b in DIALECTS {
                        let back = round(*a, &round(*b, &round(*a, message)));
                        assert!(
                            same(&back, message),
                            "{} → {} → {} {infno} seed {seed}",
                            a.name(),
                            b.name(),
                            a.name()
                        );
                    }
                }
            }
        }
    }
}

/// A sampled answer with a result code: every dialect (national first)
/// refuses an answer without `infcode`, which `sample::answer` leaves out at
/// times.
fn answered(mut answer: contracts::Answer) -> contracts::Answer {
    answer.envelope.infcode.get_or_insert(0);
    answer
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    #[test]
    fn pairs_are_the_identity_on_random_messages(seed in proptest::prelude::any::<u64>(), which in 0..Infno::ALL.len()) {
        let infno = Infno::ALL[which];
        let mut rng = Rng::new(seed);
        let messages = [Message::Request(sample::request(infno, &mut rng)), Message::Answer(infno, answered(sample::answer(infno, &mut rng)))];
        for message in &messages {
            for a in DIALECTS {
                for b in DIALECTS {
                    let back = round(*a, &round(*b, &round(*a, message)));
                    proptest::prop_assert!(same(&back, message), "{} → {} → {} {}", a.name(), b.name(), a.name(), infno);
                }
            }
        }
    }

    #[test]
    fn redacted_encoding_is_encoding_the_redacted_answer_on_random_answers(seed in proptest::prelude::any::<u64>(), which in 0..Infno::ALL.len()) {
        let infno = Infno::ALL[which];
        let answer = answered(sample::answer(infno, &mut Rng::new(seed)));
        for d in DIALECTS {
            let expected = redacted_the_long_way(*d, infno, &answer);
            proptest::prop_assert!(d.encode_answer_redacted(Some(infno), &answer) == expected, "{} {}", d.name(), infno);
            let both = d.encode_answer_and_redacted(Some(infno), &answer);
            proptest::prop_assert!(both == (d.encode_answer(Some(infno), &answer), expected), "both at once: {} {}", d.name(), infno);
        }
    }
}

/// The decoders look a name up from the field after the last one found, then
/// before it: the same field as a scan from the start only because no schema
/// has two fields of one name, in any dialect.
#[test]
fn no_schema_has_two_fields_of_one_name_in_any_dialect() {
    use adapters::he::He;
    use adapters::tj::Tj;
    use adapters::xml::XmlDialect;
    use contracts::model::envelope::{AnswerEnvelope, RequestEnvelope};
    use contracts::record::{RecordType, Schema, Shape};
    use std::collections::HashSet;
    fn walk(schema: &'static Schema, done: &mut HashSet<&'static str>) {
        if !done.insert(schema.name) {
            return;
        }
        let mut national = HashSet::new();
        let mut tj = HashSet::new();
        let mut he = HashSet::new();
        for (index, def) in schema.fields.iter().enumerate() {
            assert!(national.insert(def.name), "{}.{}", schema.name, def.name);
            assert!(
                tj.insert(Tj::wire_name(schema, index).to_text()),
                "tj {}.{}",
                schema.name,
                def.name
            );
            assert!(
                he.insert(He::wire_name(schema, index).to_text()),
                "he {}.{}",
                schema.name,
                def.name
            );
            assert_eq!(schema.index_of_from(def.name, index + 1), Some(index));
            if let Shape::Record(child) | Shape::List(child) = def.shape {
                walk(child(), done);
            }
        }
    }
    let mut done = HashSet::new();
    walk(RequestEnvelope::static_schema(), &mut done);
    walk(AnswerEnvelope::static_schema(), &mut done);
    for &infno in Infno::ALL {
        walk(infno.input_schema(), &mut done);
        walk(infno.output_schema(), &mut done);
    }
    assert!(done.len() > 20, "{} schemas", done.len());
}

/// What the journal keeps: the answer redacted (a clone, personal fields and
/// extras cleared), then encoded. `encode_answer_redacted` must write exactly
/// these bytes without the clone, and `encode_answer_and_redacted` these and
/// `encode_answer`'s in one pass.
fn redacted_the_long_way(d: &dyn Dialect, infno: Infno, answer: &Answer) -> Vec<u8> {
    let mut kept = answer.clone();
    if let Some(output) = kept.output.as_mut() {
        contracts::record::redact(output.record_mut());
    }
    contracts::record::redact(&mut kept.envelope);
    d.encode_answer(Some(infno), &kept)
}

#[test]
fn redacted_encoding_is_encoding_the_redacted_answer() {
    let mut answers: Vec<(String, Infno, Answer)> = national_fixtures()
        .into_iter()
        .filter_map(|(stem, message)| match message {
            Message::Answer(infno, answer) => Some((stem, infno, answer)),
            Message::Request(_) => None,
        })
        .collect();
    for &infno in Infno::ALL {
        for seed in 0..12u64 {
            let mut rng = Rng::new(seed * 104_729 + u64::from(infno.code().as_bytes()[2]));
            let answer = answered(sample::answer(infno, &mut rng));
            answers.push((format!("{infno} seed {seed}"), infno, answer));
        }
    }
    let mut changed = 0;
    for (what, infno, answer) in &answers {
        for d in DIALECTS {
            let expected = redacted_the_long_way(*d, *infno, answer);
            assert!(
                d.encode_answer_redacted(Some(*infno), answer) == expected,
                "{} {what}",
                d.name()
            );
            let whole = d.encode_answer(Some(*infno), answer);
            assert!(
                d.encode_answer_and_redacted(Some(*infno), answer)
                    == (whole.clone(), expected.clone()),
                "both at once: {} {what}",
                d.name()
            );
            changed += usize::from(expected != whole);
        }
    }
    // The comparison is not vacuous: many of these answers hold something to redact.
    assert!(
        changed > answers.len(),
        "only {changed} answers changed by redaction"
    );
}

/// Rewrites `contracts/fixtures/{tj,he}/` from the national fixtures.
#[test]
#[ignore = "writes files: run to regenerate the tj and he fixtures"]
fn regenerate() {
    for name in XML_DIALECTS {
        let d = get(name);
        let dir = contracts_dir().join(format!("fixtures/{name}"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        for (stem, message) in national_fixtures() {
            std::fs::write(dir.join(format!("{stem}.xml")), encode(d, &message))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

// ---------------------------------------------------------------------------
// The generated parts of the specs: the XSDs and the reference tables of the
// prose pages, made from the same schema walk and tables the codec uses.

mod spec {
    use adapters::he::He;
    use adapters::tj::{self, Tj};
    use adapters::xml::{Clock, MoneyUnit, Placement, XmlDialect, CODE_ESCAPE, EXT, EXT_KEY};
    use contracts::model::envelope::{AnswerEnvelope, RequestEnvelope};
    use contracts::record::{CodeSet, FieldDef, Kind, RecordType, Schema, Shape};
    use contracts::Infno;
    use std::fmt::Write;

    /// The marker after which a prose page is generated.
    pub const MARKER: &str = "<!-- Everything below is generated by `cargo test -p adapters --test dialect_pairs -- --ignored regenerate`: do not edit by hand. -->";

    /// Every record schema, envelopes first, then in the order the transactions reach them.
    fn schemas() -> Vec<&'static Schema> {
        fn walk(schema: &'static Schema, out: &mut Vec<&'static Schema>) {
            if out.iter().any(|s| std::ptr::eq(*s, schema)) {
                return;
            }
            out.push(schema);
            for def in schema.fields {
                if let Shape::Record(child) | Shape::List(child) = def.shape {
                    walk(child(), out);
                }
            }
        }
        let mut out = Vec::new();
        walk(RequestEnvelope::static_schema(), &mut out);
        walk(AnswerEnvelope::static_schema(), &mut out);
        for &infno in Infno::ALL {
            walk(infno.input_schema(), &mut out);
            walk(infno.output_schema(), &mut out);
        }
        out
    }

    fn kind_type(kind: Kind) -> &'static str {
        match kind {
            Kind::Text => "Text",
            Kind::Secret => "Secret",
            Kind::Money => "Money",
            Kind::Price => "Price",
            Kind::Quantity => "Quantity",
            Kind::Ratio => "Ratio",
            Kind::Age => "Age",
            Kind::Date => "Date",
            Kind::DateTime => "DateTime",
            Kind::Stamp => "Stamp",
            Kind::Int => "Int",
            Kind::Code(CodeSet::Insutype) => "Insutype",
            Kind::Code(CodeSet::MedType) => "MedType",
            Kind::Code(CodeSet::PsnCertType) => "PsnCertType",
            Kind::Code(CodeSet::MdtrtCertType) => "MdtrtCertType",
            Kind::Code(CodeSet::ClrType) => "ClrType",
            Kind::Code(CodeSet::Admdvs) => "Admdvs",
        }
    }

    fn kind_text<S: XmlDialect>(kind: Kind) -> String {
        let iso = S::CLOCK == Clock::Iso;
        match kind {
            Kind::Text => "text".into(),
            Kind::Secret => "text (personal data)".into(),
            Kind::Money if S::MONEY == MoneyUnit::Fen => "money: integer fen".into(),
            Kind::Money => "money: yuan, 2 decimals".into(),
            Kind::Price => "decimal, ≤ 6 decimals".into(),
            Kind::Quantity => "decimal, ≤ 4 decimals".into(),
            Kind::Ratio => "decimal, ≤ 4 decimals".into(),
            Kind::Age => "decimal, ≤ 1 decimal".into(),
            Kind::Date if iso => "`yyyy-MM-dd`".into(),
            Kind::Date => "`yyyyMMdd`".into(),
            Kind::DateTime if iso => "`yyyy-MM-ddTHH:mm:ss`".into(),
            Kind::DateTime => "`yyyyMMddHHmmss`".into(),
            Kind::Stamp if iso => "`yyyy-MM-ddTHH:mm:ss.SSS`".into(),
            Kind::Stamp => "`yyyyMMddHHmmssSSS`".into(),
            Kind::Int => "integer".into(),
            Kind::Code(set) if S::codes(set).is_some() => {
                format!("code: {} ({} table)", kind_type(kind), S::NAME)
            }
            Kind::Code(CodeSet::Admdvs) => "code: admdvs (6 digits)".into(),
            Kind::Code(_) => format!("code: {} (national)", kind_type(kind)),
        }
    }

    fn wire<S: XmlDialect>(schema: &'static Schema, index: usize) -> String {
        S::wire_name(schema, index).to_text()
    }

    fn doc(def: &FieldDef) -> String {
        def.doc.trim().replace('|', "\\|").replace('\n', " ")
    }

    /// The reference section of a prose page.
    pub fn reference<S: XmlDialect>() -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{MARKER}\n");
        let _ = writeln!(out, "## Reference: transactions\n");
        let _ = writeln!(out, "The body's record type by transaction (the records are defined below and in `{}.xsd`).\n", S::NAME);
        let _ = writeln!(
            out,
            "| infno | 交易 | transaction | input record | output record |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for &infno in Infno::ALL {
            let _ = writeln!(
                out,
                "| {} | {} | {} | `{}` | `{}` |",
                infno.code(),
                infno.name_zh(),
                infno.name_en(),
                infno.input_schema().name,
                infno.output_schema().name
            );
        }
        let _ = writeln!(out, "\n## Reference: records, field by field\n");
        let placement = match S::PLACEMENT {
            Placement::Elements => "element",
            Placement::Attributes => "attribute or element",
        };
        let _ = writeln!(
            out,
            "Each record lists its fields in the order they are written. *{}* is the name on the wire, *national* the national interface's field (the canonical model's name). Required fields must be present and non-empty for the gateway to accept the message; every record may also carry `<{EXT} {EXT_KEY}=\"…\">` extras after its fields.\n",
            placement
        );
        for schema in schemas() {
            let _ = writeln!(out, "### `{}`\n", schema.name);
            let _ = writeln!(
                out,
                "| {} | national | holds | required | meaning |",
                placement
            );
            let _ = writeln!(out, "|---|---|---|---|---|");
            for (index, def) in schema.fields.iter().enumerate() {
                let holds = match def.shape {
                    Shape::Scalar(kind) => match S::PLACEMENT {
                        Placement::Attributes => format!("attribute: {}", kind_text::<S>(kind)),
                        Placement::Elements => kind_text::<S>(kind),
                    },
                    Shape::Record(child) => format!("record `{}`", child().name),
                    Shape::List(child) => match S::FRAME.list_item {
                        Some(item) => format!("list of `{}`, one `<{item}>` each", child().name),
                        None => format!("list of `{}`, element repeated", child().name),
                    },
                };
                let _ = writeln!(
                    out,
                    "| `{}` | `{}` | {} | {} | {} |",
                    wire::<S>(schema, index),
                    def.name,
                    holds,
                    if def.required { "yes" } else { "" },
                    doc(def)
                );
            }
            let _ = writeln!(out);
        }
        out
    }

    /// The tj name table, national name first.
    pub fn tj_names() -> String {
        let mut out = String::from("| national | tj | 中文 |\n|---|---|---|\n");
        let mut names: Vec<_> = tj::NAMES.to_vec();
        names.sort();
        for (national, tj_name, zh) in names {
            let _ = writeln!(out, "| `{national}` | `{tj_name}` | {zh} |");
        }
        out
    }

    fn pattern(value: &str) -> String {
        format!(
            "<xs:restriction base=\"xs:string\"><xs:pattern value=\"{value}\"/></xs:restriction>"
        )
    }

    fn simple_types<S: XmlDialect>() -> String {
        let mut out = String::new();
        let iso = S::CLOCK == Clock::Iso;
        let decimal = |places: u32| format!("-?(0|[1-9][0-9]*)(\\.[0-9]{{1,{places}}}0*)?");
        let types: Vec<(&str, String, &str)> = vec![
            ("Text", "<xs:restriction base=\"xs:string\"><xs:maxLength value=\"2000\"/></xs:restriction>".into(), "Free text; empty means absent."),
            ("Secret", "<xs:restriction base=\"xs:string\"><xs:maxLength value=\"2000\"/></xs:restriction>".into(), "Personal data (names, ID numbers, diagnoses)."),
            (
                "Money",
                pattern(if S::MONEY == MoneyUnit::Fen { "-?(0|[1-9][0-9]*)" } else { "-?(0|[1-9][0-9]*)(\\.[0-9]{1,2}0*)?" }),
                if S::MONEY == MoneyUnit::Fen { "Money in integer fen; `-0` is refused." } else { "Money in yuan, written with 2 decimals; at most 2 significant decimals read; `-0` is refused." },
            ),
            ("Price", pattern(&decimal(6)), "Unit price, at most 6 significant decimals."),
            ("Quantity", pattern(&decimal(4)), "Quantity, at most 4 significant decimals."),
            ("Ratio", pattern(&decimal(4)), "Ratio, at most 4 significant decimals."),
            ("Age", pattern(&decimal(1)), "Age in years, at most 1 significant decimal."),
            ("Int", pattern("-?(0|[1-9][0-9]{0,14})"), "A whole number."),
            ("Date", pattern(if iso { "[0-9]{4}-[0-9]{2}-[0-9]{2}" } else { "[0-9]{8}" }), if iso { "yyyy-MM-dd" } else { "yyyyMMdd" }),
            (
                "DateTime",
                pattern(if iso { "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}" } else { "[0-9]{14}" }),
                if iso { "yyyy-MM-ddTHH:mm:ss, Asia/Shanghai clock" } else { "yyyyMMddHHmmss, Asia/Shanghai clock" },
            ),
            (
                "Stamp",
                pattern(if iso { "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}" } else { "[0-9]{17}" }),
                if iso { "yyyy-MM-ddTHH:mm:ss.SSS" } else { "yyyyMMddHHmmssSSS" },
            ),
            ("Admdvs", pattern("[1-9][0-9]{5}"), "Insurance region (医保区划), 6 digits."),
            ("PsnCertType", pattern("[A-Za-z0-9]{1,16}"), "National psn_cert_type code."),
            ("MdtrtCertType", pattern("[A-Za-z0-9]{1,16}"), "National mdtrt_cert_type code."),
            ("ClrType", pattern("[A-Za-z0-9]{1,16}"), "National clr_type code."),
        ];
        for (name, body, what) in types {
            let _ = writeln!(out, "  <xs:simpleType name=\"{name}\">\n    <xs:annotation><xs:documentation>{what}</xs:documentation></xs:annotation>\n    {body}\n  </xs:simpleType>");
        }
        for (set, name) in [
            (CodeSet::Insutype, "Insutype"),
            (CodeSet::MedType, "MedType"),
        ] {
            let table = S::codes(set).unwrap_or_else(|| panic!("{name} table"));
            let codes: Vec<&str> = table.pairs.iter().map(|(_, w)| *w).collect();
            let mapping: Vec<String> = table
                .pairs
                .iter()
                .map(|(n, w)| format!("{w}={n}"))
                .collect();
            let _ = writeln!(
                out,
                "  <xs:simpleType name=\"{name}\">\n    <xs:annotation><xs:documentation>{} code (dialect=national): {}; any other national code is written {CODE_ESCAPE} followed by it.</xs:documentation></xs:annotation>\n    {}\n  </xs:simpleType>",
                S::NAME,
                mapping.join(", "),
                pattern(&format!("{}|{}[A-Za-z0-9]{{1,16}}", codes.join("|"), CODE_ESCAPE))
            );
        }
        let infnos: Vec<&str> = Infno::ALL.iter().map(|i| i.code()).collect();
        let _ = writeln!(
            out,
            "  <xs:simpleType name=\"Infno\">\n    {}\n  </xs:simpleType>",
            pattern(&infnos.join("|"))
        );
        let _ = writeln!(
            out,
            "  <xs:complexType name=\"{EXT}\">\n    <xs:annotation><xs:documentation>A key outside the standard; the text is the value's compact JSON.</xs:documentation></xs:annotation>\n    <xs:simpleContent><xs:extension base=\"xs:string\"><xs:attribute name=\"{EXT_KEY}\" type=\"xs:string\" use=\"required\"/></xs:extension></xs:simpleContent>\n  </xs:complexType>"
        );
        out
    }

    fn occurs(def: &FieldDef) -> &'static str {
        if def.required {
            ""
        } else {
            " minOccurs=\"0\""
        }
    }

    /// The content model of one record: a sequence of child elements (and, for attribute placement, attributes).
    fn record_content<S: XmlDialect>(
        schema: &'static Schema,
        first: &str,
        last: &str,
        attributes_first: &str,
    ) -> String {
        let mut children = String::from(first);
        let mut attributes = String::from(attributes_first);
        for (index, def) in schema.fields.iter().enumerate() {
            let name = wire::<S>(schema, index);
            let documentation = format!(
                "<xs:annotation><xs:documentation>{}: {}</xs:documentation></xs:annotation>",
                def.name,
                xml_text(def.doc.trim())
            );
            match def.shape {
                Shape::Scalar(kind) if S::PLACEMENT == Placement::Attributes => {
                    let use_ = if def.required { "required" } else { "optional" };
                    let _ = writeln!(attributes, "    <xs:attribute name=\"{name}\" type=\"{}\" use=\"{use_}\">{documentation}</xs:attribute>", kind_type(kind));
                }
                Shape::Scalar(kind) => {
                    let _ = writeln!(children, "      <xs:element name=\"{name}\" type=\"{}\"{}>{documentation}</xs:element>", kind_type(kind), occurs(def));
                }
                Shape::Record(child) => {
                    let _ = writeln!(children, "      <xs:element name=\"{name}\" type=\"{}\"{}>{documentation}</xs:element>", child().name, occurs(def));
                }
                Shape::List(child) => match S::FRAME.list_item {
                    Some(item) => {
                        let _ = writeln!(
                            children,
                            "      <xs:element name=\"{name}\" minOccurs=\"0\">{documentation}<xs:complexType><xs:sequence><xs:element name=\"{item}\" type=\"{}\" maxOccurs=\"unbounded\"/></xs:sequence></xs:complexType></xs:element>",
                            child().name
                        );
                    }
                    None => {
                        let _ = writeln!(children, "      <xs:element name=\"{name}\" type=\"{}\" minOccurs=\"0\" maxOccurs=\"unbounded\">{documentation}</xs:element>", child().name);
                    }
                },
            }
        }
        let _ = writeln!(
            children,
            "      <xs:element name=\"{EXT}\" type=\"{EXT}\" minOccurs=\"0\" maxOccurs=\"64\"/>"
        );
        children.push_str(last);
        format!("    <xs:sequence>\n{children}    </xs:sequence>\n{attributes}")
    }

    fn xml_text(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }

    /// The XSD of dialect `S`.
    pub fn xsd<S: XmlDialect>() -> String {
        let frame = S::FRAME;
        let mut out = String::new();
        let _ = writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        let _ = writeln!(out, "<!-- The {} dialect of jjj-gateway. Generated from the canonical schemas and the dialect's tables by the ignored test regenerate_specs in adapters/tests/dialect_pairs.rs: do not edit by hand. Prose: {}.md. -->", S::NAME, S::NAME);
        let _ = writeln!(out, "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" elementFormDefault=\"unqualified\">");
        let _ = writeln!(
            out,
            "  <xs:annotation><xs:documentation>The input ({}) and output ({}) elements hold the record type the transaction table of {}.md names for the transaction (e.g. SettleInput for 2207); XSD 1.0 cannot tie a type to the transaction number, so they are declared xs:anyType here. To check a body, validate it with xsi:type set to that record type.</xs:documentation></xs:annotation>",
            frame.input, frame.output, S::NAME
        );
        out.push_str(&simple_types::<S>());
        let request_envelope = RequestEnvelope::static_schema();
        let answer_envelope = AnswerEnvelope::static_schema();
        for schema in schemas() {
            if std::ptr::eq(schema, request_envelope) || std::ptr::eq(schema, answer_envelope) {
                continue;
            }
            let _ = writeln!(
                out,
                "  <xs:complexType name=\"{}\">\n{}  </xs:complexType>",
                schema.name,
                record_content::<S>(schema, "", "", "")
            );
        }
        let body = |name: &str, optional: bool| {
            format!(
                "      <xs:element name=\"{name}\" type=\"xs:anyType\"{}/>\n",
                if optional { " minOccurs=\"0\"" } else { "" }
            )
        };
        match frame.header {
            None => {
                let infno = format!(
                    "      <xs:element name=\"{}\" type=\"Infno\"/>\n",
                    frame.infno
                );
                let _ = writeln!(out, "  <xs:element name=\"{}\">\n  <xs:complexType>\n{}  </xs:complexType>\n  </xs:element>", frame.request_root, record_content::<S>(request_envelope, &infno, &body(frame.input, false), ""));
                let _ = writeln!(out, "  <xs:element name=\"{}\">\n  <xs:complexType>\n{}  </xs:complexType>\n  </xs:element>", frame.answer_root, record_content::<S>(answer_envelope, "", &body(frame.output, true), ""));
            }
            Some(header) => {
                let infno = format!(
                    "    <xs:attribute name=\"{}\" type=\"Infno\" use=\"required\"/>\n",
                    frame.infno
                );
                let _ = writeln!(
                    out,
                    "  <xs:complexType name=\"RequestHeader\">\n{}  </xs:complexType>",
                    record_content::<S>(request_envelope, "", "", &infno)
                );
                let _ = writeln!(
                    out,
                    "  <xs:complexType name=\"AnswerHeader\">\n{}  </xs:complexType>",
                    record_content::<S>(answer_envelope, "", "", "")
                );
                for (root, header_type, body_name, optional) in [
                    (frame.request_root, "RequestHeader", frame.input, false),
                    (frame.answer_root, "AnswerHeader", frame.output, true),
                ] {
                    let _ = writeln!(
                        out,
                        "  <xs:element name=\"{root}\">\n  <xs:complexType>\n    <xs:sequence>\n      <xs:element name=\"{header}\" type=\"{header_type}\"/>\n{}    </xs:sequence>\n  </xs:complexType>\n  </xs:element>",
                        body(body_name, optional)
                    );
                }
            }
        }
        let _ = writeln!(out, "</xs:schema>");
        out
    }

    /// The generated files: (path under contracts/, content).
    pub fn files() -> Vec<(String, String)> {
        let page = |name: &str, generated: String| {
            let path = format!("dialects/{name}.md");
            let current =
                std::fs::read_to_string(super::contracts_dir().join(&path)).unwrap_or_default();
            let prose = current
                .split(MARKER)
                .next()
                .unwrap_or_default()
                .trim_end()
                .to_owned();
            (path, format!("{prose}\n\n{generated}"))
        };
        vec![
            ("dialects/tj.xsd".into(), xsd::<Tj>()),
            ("dialects/he.xsd".into(), xsd::<He>()),
            page("tj", format!("{}## Reference: the name table\n\nEvery national field name and its tj element name (the initials of the pinyin of its Chinese name).\n\n{}", reference::<Tj>(), tj_names())),
            page("he", reference::<He>()),
        ]
    }
}

#[test]
fn the_generated_parts_of_the_specs_are_up_to_date() {
    for (path, content) in spec::files() {
        let current = std::fs::read_to_string(contracts_dir().join(&path)).unwrap_or_default();
        assert!(
            current == content,
            "contracts/{path} is out of date: regenerate"
        );
    }
}

/// Rewrites the generated parts of `contracts/dialects/`.
#[test]
#[ignore = "writes files: run to regenerate the specs"]
fn regenerate_specs() {
    for (path, content) in spec::files() {
        std::fs::write(contracts_dir().join(&path), content)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}
