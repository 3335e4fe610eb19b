//! Decode + validate + encode in the national dialect, next to serde_json's
//! plain parse + serialize of the same bytes into `serde_json::Value`.
//!
//! Run: `cargo bench -p adapters --bench national`

use adapters::national::National;
use adapters::{Dialect, Limits};
use contracts::validate::{check_answer, validate_request, Jingjinji};
use contracts::Infno;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../contracts/fixtures/national")
        .join(name);
    std::fs::read(path).unwrap_or_default()
}

/// A 2204 upload of `lines` fee lines, as a HIS would send it.
pub fn big_upload(lines: usize) -> Vec<u8> {
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

fn national(c: &mut Criterion) {
    let limits = Limits::DEFAULT;
    let answer = fixture("2207-answer.json");
    let upload = big_upload(5_000);
    assert!(National
        .decode_request(&upload, &limits)
        .is_ok_and(|r| validate_request(&r, &Jingjinji).is_ok()));

    let mut group = c.benchmark_group("2207 answer");
    group.throughput(Throughput::Bytes(answer.len() as u64));
    group.bench_function("national decode+check+encode", |b| {
        b.iter(|| {
            let decoded =
                National.decode_answer(Infno::OutpatientSettle, black_box(&answer), &limits);
            decoded.map(|a| {
                (
                    check_answer(Infno::OutpatientSettle, &a).len(),
                    National.encode_answer(Some(Infno::OutpatientSettle), &a),
                )
            })
        })
    });
    group.bench_function("serde_json Value parse+serialize", |b| {
        b.iter(|| {
            serde_json::from_slice::<serde_json::Value>(black_box(&answer))
                .and_then(|v| serde_json::to_vec(&v))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("2204 upload, 5000 lines");
    group.throughput(Throughput::Bytes(upload.len() as u64));
    group.sample_size(30);
    group.bench_function("national decode+validate+encode", |b| {
        b.iter(|| {
            let decoded = National.decode_request(black_box(&upload), &limits);
            decoded.map(|r| {
                (
                    validate_request(&r, &Jingjinji).is_ok(),
                    National.encode_request(&r),
                )
            })
        })
    });
    group.bench_function("serde_json Value parse+serialize", |b| {
        b.iter(|| {
            serde_json::from_slice::<serde_json::Value>(black_box(&upload))
                .and_then(|v| serde_json::to_vec(&v))
        })
    });
    group.finish();
}

criterion_group!(benches, national);
criterion_main!(benches);
