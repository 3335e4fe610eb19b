//! Translation from the XML dialects to national (decode tj or he, encode
//! national), next to serde_json's plain parse + serialize of the equivalent
//! national JSON into `serde_json::Value`, in the same run. Throughput is
//! the input's bytes: the tj or he message, and the national JSON for serde_json.
//!
//! Run: `cargo bench -p adapters --bench dialects`

use adapters::{dialect, Dialect, Limits};
use contracts::{Infno, Request};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../contracts/fixtures/national")
        .join(name);
    std::fs::read(path).unwrap_or_default()
}

fn get(name: &str) -> &'static dyn Dialect {
    dialect(name).unwrap_or_else(|r| panic!("{r}"))
}

/// A 2204 upload of `lines` fee lines, as a HIS would send it (national JSON).
fn big_upload(lines: usize) -> Vec<u8> {
    let mut body = String::from(
        r#"{"infno":"2204","msgid":"H11010500123202611250930150001","mdtrtarea_admvs":"110000","insuplc_admdvs":"130600","recer_sys_code":"YBXT","infver":"V1.0","opter_type":"1","opter":"1022","opter_name":"李收费","inf_time":"2026-11-25 09:30:15","fixmedins_code":"H11010500123","fixmedins_name":"北京市朝阳区示例医院","sign_no":"651918","input":{"feedetail":["#,
    );
    for i in 0..lines {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"feedetl_sn":"F{i:06}","mdtrt_id":"130600026112500001234567","psn_no":"13000000000012345678","chrg_bchno":"CB20261125001","rxno":"RX{i}","rx_circ_flag":"0","fee_ocur_time":"2026-11-25 09:20:00","med_list_codg":"XA10BAE056A001010100483","medins_list_codg":"YP000123","det_item_fee_sumamt":25.2,"cnt":3,"pric":8.4,"sin_dos_dscr":"0.5g","used_frqu_dscr":"tid","prd_days":7,"medc_way_dscr":"口服","bilg_dept_codg":"A03","bilg_dept_name":"内科","bilg_dr_codg":"D001","bilg_dr_name":"王医生","hosp_appr_flag":"1"}}"#
        ));
    }
    body.push_str("]}}");
    body.into_bytes()
}

fn dialects(c: &mut Criterion) {
    let limits = Limits::DEFAULT;
    let national = get("national");
    let upload_json = big_upload(5_000);
    let upload: Request = national
        .decode_request(&upload_json, &limits)
        .unwrap_or_else(|r| panic!("{r}"));
    // The national JSON of the same message, as national writes it.
    let upload_json = national.encode_request(&upload);
    let answer_json = fixture("2207-answer.json");
    let infno = Infno::OutpatientSettle;
    let answer = national
        .decode_answer(infno, &answer_json, &limits)
        .unwrap_or_else(|r| panic!("{r}"));
    let answer_json = national.encode_answer(Some(infno), &answer);

    let mut group = c.benchmark_group("2204 upload, 5000 lines, to national");
    group.sample_size(20);
    for name in ["tj", "he"] {
        let d = get(name);
        let bytes = d.encode_request(&upload);
        assert_eq!(d.decode_request(&bytes, &limits).as_ref(), Ok(&upload));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(
            format!("{name} decode + national encode ({} bytes)", bytes.len()),
            |b| {
                b.iter(|| {
                    d.decode_request(black_box(&bytes), &limits)
                        .map(|r| national.encode_request(&r))
                })
            },
        );
    }
    group.throughput(Throughput::Bytes(upload_json.len() as u64));
    group.bench_function(
        format!(
            "serde_json Value parse+serialize ({} bytes)",
            upload_json.len()
        ),
        |b| {
            b.iter(|| {
                serde_json::from_slice::<serde_json::Value>(black_box(&upload_json))
                    .and_then(|v| serde_json::to_vec(&v))
            })
        },
    );
    group.finish();

    let mut group = c.benchmark_group("2207 answer, to national");
    for name in ["tj", "he"] {
        let d = get(name);
        let bytes = d.encode_answer(Some(infno), &answer);
        assert_eq!(
            d.decode_answer(infno, &bytes, &limits).as_ref(),
            Ok(&answer)
        );
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(
            format!("{name} decode + national encode ({} bytes)", bytes.len()),
            |b| {
                b.iter(|| {
                    d.decode_answer(infno, black_box(&bytes), &limits)
                        .map(|a| national.encode_answer(Some(infno), &a))
                })
            },
        );
    }
    group.throughput(Throughput::Bytes(answer_json.len() as u64));
    group.bench_function(
        format!(
            "serde_json Value parse+serialize ({} bytes)",
            answer_json.len()
        ),
        |b| {
            b.iter(|| {
                serde_json::from_slice::<serde_json::Value>(black_box(&answer_json))
                    .and_then(|v| serde_json::to_vec(&v))
            })
        },
    );
    group.finish();
}

criterion_group!(benches, dialects);
criterion_main!(benches);
