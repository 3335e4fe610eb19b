//! The national dialect: every fixture, real traffic's quirks, every refusal
//! class, and round trips of random canonical messages.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use adapters::national::National;
use adapters::{Dialect, Limits};
use contracts::model::settlement::SettleInput;
use contracts::record::RecordType;
use contracts::sample::{self, Rng};
use contracts::validate::{check_answer, validate_request, Jingjinji};
use contracts::{AnswerBody, ErrorCode, Infno, Money, RequestBody};
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../contracts/fixtures/national")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn code_of(result: Result<impl std::fmt::Debug, contracts::Refusal>) -> ErrorCode {
    match result {
        Ok(value) => panic!("expected a refusal, got {value:?}"),
        Err(refusal) => refusal.code,
    }
}

const L: Limits = Limits::DEFAULT;

#[test]
fn every_transaction_has_a_request_and_an_answer_fixture_that_round_trip() {
    for &infno in Infno::ALL {
        let bytes = fixture(&format!("{}-request.json", infno.code()));
        let request = National
            .decode_request(&bytes, &L)
            .unwrap_or_else(|r| panic!("{infno}: {r}"));
        assert_eq!(request.infno(), infno);
        validate_request(&request, &Jingjinji).unwrap_or_else(|r| panic!("{infno}: {r}"));
        let again = National.decode_request(&National.encode_request(&request), &L);
        assert_eq!(again.as_ref(), Ok(&request), "{infno} request");

        let bytes = fixture(&format!("{}-answer.json", infno.code()));
        let answer = National
            .decode_answer(infno, &bytes, &L)
            .unwrap_or_else(|r| panic!("{infno}: {r}"));
        assert!(answer.envelope.is_success());
        assert_eq!(
            check_answer(infno, &answer),
            vec![],
            "{infno} answer balances"
        );
        let again =
            National.decode_answer(infno, &National.encode_answer(Some(infno), &answer), &L);
        assert_eq!(again.as_ref(), Ok(&answer), "{infno} answer");
    }
}

#[test]
fn amounts_are_read_exactly_whatever_their_written_form() {
    let answer = National
        .decode_answer(Infno::OutpatientSettle, &fixture("2207-answer.json"), &L)
        .expect("decodes");
    let Some(AnswerBody::OutpatientSettle(out)) = answer.output else {
        panic!("2207 output")
    };
    let info = out.setlinfo;
    assert_eq!(info.medfee_sumamt.map(Money::fen), Some(10_020)); // 100.2
    assert_eq!(info.hifp_pay.map(Money::fen), Some(5_710)); // 57.10
    assert_eq!(info.overlmt_selfpay.map(Money::fen), Some(0)); // 0.0
    assert_eq!(info.acct_mulaid_pay, None); // null is absent, not zero
    assert_eq!(
        info.pool_prop_selfpay.map(|r| r.to_string()).as_deref(),
        Some("0.4000")
    );
    // Keys of the platform's own survive, in order, verbatim.
    let keys: Vec<&str> = info.extras.0.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["psn_pay", "exp_content"]);
    let encoded = String::from_utf8(
        National.encode_answer(
            Some(Infno::OutpatientSettle),
            &National
                .decode_answer(Infno::OutpatientSettle, &fixture("2207-answer.json"), &L)
                .expect("decodes"),
        ),
    )
    .expect("utf-8");
    assert!(encoded.contains(r#""medfee_sumamt":100.20"#), "{encoded}");
    assert!(
        encoded.contains(r#""exp_content":"{\"ownpay_hosp_part\":0}""#),
        "{encoded}"
    );
}

#[test]
fn infcode_comes_as_number_or_string_and_success_text_varies() {
    for (text, code, err) in [
        (r#"{"infcode":0,"err_msg":null,"output":null}"#, 0, None),
        (
            r#"{"infcode":"0","err_msg":"成功","output":{}}"#,
            0,
            Some("成功"),
        ),
        (
            r#"{"infcode":-1,"err_msg":"人员未参保","output":null}"#,
            -1,
            Some("人员未参保"),
        ),
        (r#"{"infcode":"-1","err_msg":"","output":""}"#, -1, None),
    ] {
        let answer = National
            .decode_answer(Infno::OutpatientRegisterCancel, text.as_bytes(), &L)
            .expect(text);
        assert_eq!(answer.envelope.infcode, Some(code), "{text}");
        assert_eq!(answer.envelope.err_msg.as_deref(), err, "{text}");
    }
}

#[test]
fn cancels_carry_negative_amounts() {
    let answer = National
        .decode_answer(
            Infno::OutpatientSettleCancel,
            &fixture("2208-answer.json"),
            &L,
        )
        .expect("decodes");
    let Some(AnswerBody::OutpatientSettleCancel(out)) = &answer.output else {
        panic!("2208 output")
    };
    assert_eq!(out.setlinfo.medfee_sumamt.map(Money::fen), Some(-10_020));
    assert_eq!(check_answer(Infno::OutpatientSettleCancel, &answer), vec![]);
}

#[test]
fn an_unbalanced_answer_is_passed_on_with_an_anomaly() {
    let text = String::from_utf8(fixture("2207-answer.json"))
        .expect("utf-8")
        .replace("\"psn_cash_pay\": 0.0", "\"psn_cash_pay\": 0.01");
    let answer = National
        .decode_answer(Infno::OutpatientSettle, text.as_bytes(), &L)
        .expect("still decodes");
    let rules: Vec<&str> = check_answer(Infno::OutpatientSettle, &answer)
        .iter()
        .map(|a| a.rule)
        .collect();
    assert_eq!(rules, ["person_part"]);
}

#[test]
fn input_before_infno_is_read_all_the_same() {
    let original = National
        .decode_request(&fixture("2207-request.json"), &L)
        .expect("decodes");
    let text = r#"{"input":{"data":{"psn_no":"1","mdtrt_cert_type":"03","mdtrt_cert_no":"X","medfee_sumamt":"9","psn_setlway":"01","acct_used_flag":"0"}},"msgid":"M1","mdtrtarea_admvs":"110000","insuplc_admdvs":"130600","fixmedins_code":"H1","infno":2207}"#;
    let request = National
        .decode_request(text.as_bytes(), &L)
        .expect("decodes");
    assert_eq!(request.infno(), original.infno());
    let RequestBody::OutpatientSettle(SettleInput { data, .. }) = &request.input else {
        panic!("2207")
    };
    assert_eq!(data.medfee_sumamt.map(Money::fen), Some(900));
    validate_request(&request, &Jingjinji).expect("valid");
}

fn refuse_request(text: &str) -> ErrorCode {
    code_of(
        National
            .decode_request(text.as_bytes(), &L)
            .and_then(|r| validate_request(&r, &Jingjinji).map(|()| r)),
    )
}

fn settle_with(data: &str) -> String {
    format!(
        r#"{{"infno":"2207","msgid":"H1202611250000000001","mdtrtarea_admvs":"110000","insuplc_admdvs":"130600","fixmedins_code":"H1","input":{{"data":{{{data}}}}}}}"#
    )
}

const GOOD_DATA: &str = r#""psn_no":"1","mdtrt_cert_type":"03","mdtrt_cert_no":"X","psn_setlway":"01","acct_used_flag":"0""#;

#[test]
fn each_refusal_class_has_its_code() {
    assert_eq!(refuse_request("{"), ErrorCode::Malformed);
    assert_eq!(refuse_request("[]"), ErrorCode::Malformed);
    assert_eq!(
        refuse_request(r#"{"infno":"2207"} trailing"#),
        ErrorCode::Malformed
    );
    assert_eq!(
        code_of(National.decode_request(b"{\"infno\":\"\xff\"}", &L)),
        ErrorCode::WrongEncoding
    );
    let deep = format!(
        r#"{{"infno":"2207","zz":{}{}}}"#,
        "[".repeat(64),
        "]".repeat(64)
    );
    assert_eq!(refuse_request(&deep), ErrorCode::TooDeep);
    assert_eq!(
        refuse_request(r#"{"infno":"2207","msgid":"a","msgid":"b"}"#),
        ErrorCode::DuplicateField
    );
    assert_eq!(
        refuse_request(r#"{"infno":"9999"}"#),
        ErrorCode::UnknownTransaction
    );
    assert_eq!(refuse_request(r#"{"msgid":"a"}"#), ErrorCode::MissingField);
    assert_eq!(
        refuse_request(&settle_with(GOOD_DATA)),
        ErrorCode::MissingField
    );
    for bad in [
        "12.345",
        "1e3",
        "\"１２\"",
        "\"-0\"",
        "\"NaN\"",
        "\"Infinity\"",
        "true",
        "\"12,00\"",
        "10000000000000",
    ] {
        let data = format!(r#"{GOOD_DATA},"medfee_sumamt":{bad}"#);
        assert_eq!(
            refuse_request(&settle_with(&data)),
            ErrorCode::InvalidValue,
            "{bad}"
        );
    }
    // Bare NaN is not even JSON.
    assert_eq!(
        refuse_request(&settle_with(&format!(r#"{GOOD_DATA},"medfee_sumamt":NaN"#))),
        ErrorCode::Malformed
    );
    let unbalanced = format!(
        r#"{GOOD_DATA},"medfee_sumamt":10,"fulamt_ownpay_amt":1,"overlmt_selfpay":0,"preselfpay_amt":0,"inscp_scp_amt":8.99"#
    );
    assert_eq!(
        refuse_request(&settle_with(&unbalanced)),
        ErrorCode::Unbalanced
    );
    let shanghai =
        settle_with(&format!(r#"{GOOD_DATA},"medfee_sumamt":10"#)).replace("130600", "310000");
    assert_eq!(refuse_request(&shanghai), ErrorCode::UnknownRegion);
    let bad_id = settle_with(&format!(r#"{GOOD_DATA},"medfee_sumamt":10"#)).replace(
        r#""mdtrt_cert_type":"03","mdtrt_cert_no":"X""#,
        r#""mdtrt_cert_type":"02","mdtrt_cert_no":"110105194912310021""#,
    );
    assert_eq!(refuse_request(&bad_id), ErrorCode::InvalidIdNumber);
    let line = r#"{"feedetl_sn":"1","mdtrt_id":"M","psn_no":"P","chrg_bchno":"B","fee_ocur_time":"2026-11-25 09:00:00","med_list_codg":"C","medins_list_codg":"C","det_item_fee_sumamt":25.01,"cnt":3,"pric":8.333333}"#;
    let upload = format!(
        r#"{{"infno":"2204","msgid":"m","mdtrtarea_admvs":"110000","insuplc_admdvs":"130600","fixmedins_code":"H1","input":{{"feedetail":[{line}]}}}}"#
    );
    assert_eq!(refuse_request(&upload), ErrorCode::FeeLineMismatch);
    let twice = upload.replace("25.01", "25.00").replace(
        &format!("[{}]", &line.replace("25.01", "25.00")),
        &format!("[{0},{0}]", line.replace("25.01", "25.00")),
    );
    assert_eq!(refuse_request(&twice), ErrorCode::FeeLineMismatch);
    let reversal = r#"{"infno":"2601","msgid":"m","mdtrtarea_admvs":"110000","insuplc_admdvs":"130600","fixmedins_code":"H1","input":{"data":{"psn_no":"P","omsgid":"o","oinfno":"1101"}}}"#;
    assert_eq!(refuse_request(reversal), ErrorCode::InvalidRequest);
    let small = Limits {
        body_bytes_max: 10,
        ..L
    };
    assert_eq!(
        code_of(National.decode_request(b"{\"infno\":\"2207\"}", &small)),
        ErrorCode::TooLarge
    );
    let few = Limits { items_max: 1, ..L };
    let many = upload.replace(&format!("[{line}]"), &format!("[{line},{line}]"));
    assert_eq!(
        code_of(National.decode_request(many.as_bytes(), &few)),
        ErrorCode::TooMany
    );
}

#[test]
fn refusals_name_the_field_but_never_its_value() {
    let secret_id = "110105194912310021";
    let text = settle_with(&format!(r#"{GOOD_DATA},"medfee_sumamt":10"#)).replace(
        r#""mdtrt_cert_type":"03","mdtrt_cert_no":"X""#,
        &format!(r#""mdtrt_cert_type":"02","mdtrt_cert_no":"{secret_id}""#),
    );
    let refusal = National
        .decode_request(text.as_bytes(), &L)
        .and_then(|r| validate_request(&r, &Jingjinji))
        .expect_err("refused");
    assert_eq!(refusal.detail, "input.data.mdtrt_cert_no");
    let text = settle_with(&format!(r#"{GOOD_DATA},"medfee_sumamt":"12.345""#));
    let refusal = National
        .decode_request(text.as_bytes(), &L)
        .expect_err("refused");
    assert_eq!(
        refusal.detail,
        "input.data.medfee_sumamt: more than 2 decimals"
    );
    assert!(!format!("{refusal} {refusal:?}").contains("12.345"));
}

#[test]
fn refusal_answers_are_national_answers() {
    let refusal = contracts::Refusal::new(ErrorCode::RateLimited, "institution H1");
    let bytes = National.encode_answer(None, &contracts::Answer::refusal(&refusal));
    let answer = National
        .decode_answer(Infno::PersonLookup, &bytes, &L)
        .expect("decodes");
    assert_eq!(answer.envelope.infcode, Some(4029));
    assert!(answer
        .envelope
        .err_msg
        .as_deref()
        .is_some_and(|m| m.starts_with("[E4029]")));
    assert_eq!(answer.output, None);
}

#[test]
fn every_record_fits_the_decoders_field_set() {
    for &infno in Infno::ALL {
        for schema in [infno.input_schema(), infno.output_schema()] {
            assert!(schema.fields.len() <= 128, "{}", schema.name);
        }
    }
    assert!(
        <contracts::model::settlement::SetlInfo as RecordType>::static_schema()
            .fields
            .len()
            <= 128
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    #[test]
    fn any_canonical_request_survives_encode_then_decode(seed: u64, which in 0..Infno::ALL.len()) {
        let infno = Infno::ALL[which];
        let request = sample::request(infno, &mut Rng::new(seed));
        let bytes = National.encode_request(&request);
        let decoded = National.decode_request(&bytes, &L);
        proptest::prop_assert_eq!(decoded, Ok(request));
    }

    #[test]
    fn any_canonical_answer_survives_encode_then_decode(seed: u64, which in 0..Infno::ALL.len()) {
        let infno = Infno::ALL[which];
        let mut answer = sample::answer(infno, &mut Rng::new(seed));
        answer.envelope.infcode.get_or_insert(0);
        let bytes = National.encode_answer(Some(infno), &answer);
        let decoded = National.decode_answer(infno, &bytes, &L);
        proptest::prop_assert_eq!(decoded, Ok(answer));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = National.decode_request(&bytes, &L);
        let _ = National.decode_answer(Infno::OutpatientSettle, &bytes, &L);
    }

    #[test]
    fn mutated_fixtures_never_panic(seed: u64, cut in 0usize..4000, byte: u8) {
        let mut bytes = fixture("2207-answer.json");
        let at = cut % bytes.len();
        bytes[at] = byte;
        let _ = National.decode_answer(Infno::OutpatientSettle, &bytes, &L);
        let mut rng = Rng::new(seed);
        let mut request = fixture("2204-request.json");
        let at = rng.below(request.len() as u64) as usize;
        request.truncate(at);
        let _ = National.decode_request(&request, &L);
    }
}

#[test]
fn a_missing_field_is_named_by_its_whole_path() {
    let text = String::from_utf8(fixture("2204-request.json")).unwrap();
    let mut message: serde_json::Value = serde_json::from_str(&text).unwrap();
    let refusal_of = |message: &serde_json::Value| {
        National
            .decode_request(message.to_string().as_bytes(), &L)
            .and_then(|r| validate_request(&r, &Jingjinji))
    };
    assert!(refusal_of(&message).is_ok());
    // The second line without its charge batch; then the first without its
    // serial number too: the first missing field in message order is named.
    let lines = message["input"]["feedetail"].as_array_mut().unwrap();
    lines[1].as_object_mut().unwrap().remove("chrg_bchno");
    let refusal = refusal_of(&message).unwrap_err();
    assert_eq!(refusal.code, ErrorCode::MissingField);
    assert_eq!(refusal.detail, "input.feedetail[1].chrg_bchno");
    message["input"]["feedetail"][0]["feedetl_sn"] = serde_json::Value::String(String::new());
    assert_eq!(
        refusal_of(&message).unwrap_err().detail,
        "input.feedetail[0].feedetl_sn"
    );
    message.as_object_mut().unwrap().remove("infno");
    assert_eq!(refusal_of(&message).unwrap_err().detail, "infno");
}
