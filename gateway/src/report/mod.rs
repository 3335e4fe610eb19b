//! The clearing report of one day, for clearing officers: what was compared,
//! what did not match, what each region owes and receives. One value,
//! [`Report`], written three ways: JSON (the API and `report.json`), CSV and
//! XLSX (Chinese column headers, amounts as 2-decimal numbers).
//!
//! JSON amounts are numbers in yuan written with exactly two decimals
//! (`"net": -1234.50`), never passed through floating point.

pub mod xlsx;

use crate::clearing::Clearing;
use crate::reconcile::{Class, Discrepancy, Outcome, Regions, Sums};
use contracts::statement::Row;
use contracts::{Admdvs, Date, Money};
use serde::Serialize;
use serde_json::value::RawValue;
use xlsx::{Cell, Sheet};

/// Who closed a day, when, and the digest of the report they signed off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Closure {
    /// The officer's institution code.
    pub by: String,
    /// When, `yyyy-MM-dd HH:mm:ss` Shanghai.
    pub at: String,
    /// SHA-256 (hex) of the report's JSON as it was when closed (with `status` open).
    pub digest: String,
}

/// Who is looking at a report (the API adds it; files leave it out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Viewer {
    /// The caller's institution code.
    pub institution: String,
    /// `officer` or `platform`.
    pub role: &'static str,
}

impl Viewer {
    /// The viewer behind a caller.
    pub fn of(caller: &crate::identity::Caller) -> Viewer {
        Viewer {
            institution: caller.institution.code.clone(),
            role: match caller.institution.role {
                crate::config::Role::Officer => "officer",
                crate::config::Role::Platform => "platform",
                crate::config::Role::Hospital => "hospital",
            },
        }
    }

    /// A stored report's JSON with this viewer added as its first key
    /// (textually, so the stored amounts keep their exact form).
    pub fn inject(&self, json: &str) -> Vec<u8> {
        let viewer = serde_json::to_string(self).unwrap_or_else(|_| "null".into());
        match json.find('{') {
            Some(at) => {
                format!("{}{{\"viewer\": {viewer},{}", &json[..at], &json[at + 1..]).into_bytes()
            }
            None => json.as_bytes().to_vec(),
        }
    }
}

/// A platform's dispute of one clearing row (3261 with `cnfm_flag` 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dispute {
    /// The disputing (insured) region.
    pub admdvs: String,
    /// The settlement.
    pub setl_id: String,
    /// The visit.
    pub mdtrt_id: Option<String>,
    /// Why.
    pub memo: Option<String>,
    /// When.
    pub at: String,
}

/// One day's report.
#[derive(Debug, Clone)]
pub struct Report {
    /// The clearing day.
    pub day: Date,
    /// The configured regions.
    pub regions: Regions,
    /// The reconciliation.
    pub outcome: Outcome,
    /// The clearing.
    pub clearing: Clearing,
    /// Disputes raised by platforms.
    pub disputes: Vec<Dispute>,
    /// Set once the day is closed.
    pub closure: Option<Closure>,
    /// Who asked (API answers only).
    pub viewer: Option<Viewer>,
}

/// An exact yuan amount as a JSON number with two decimals.
fn yuan(money: Money) -> Box<RawValue> {
    RawValue::from_string(money.to_yuan_string())
        .unwrap_or_else(|_| RawValue::from_string("null".into()).unwrap_or_default())
}

fn yuan_opt(money: Option<Money>) -> Option<Box<RawValue>> {
    money.map(yuan)
}

#[derive(Serialize)]
struct SumsJson {
    count: u64,
    unknown_outcome: u64,
    medfee_sumamt: Box<RawValue>,
    fund_pay_sumamt: Box<RawValue>,
    acct_pay: Box<RawValue>,
    psn_cash_pay: Box<RawValue>,
}

impl From<&Sums> for SumsJson {
    fn from(s: &Sums) -> SumsJson {
        SumsJson {
            count: s.count,
            unknown_outcome: s.unknown,
            medfee_sumamt: yuan(s.medfee_sumamt),
            fund_pay_sumamt: yuan(s.fund_pay_sumamt),
            acct_pay: yuan(s.acct_pay),
            psn_cash_pay: yuan(s.psn_cash_pay),
        }
    }
}

#[derive(Serialize)]
struct RowJson {
    setl_id: Option<String>,
    msgid: Option<String>,
    omsgid: Option<String>,
    mdtrt_id: Option<String>,
    fixmedins_code: String,
    insuplc_admdvs: String,
    mdtrtarea_admvs: String,
    insutype: Option<String>,
    med_type: Option<String>,
    clr_type: Option<String>,
    setl_time: String,
    medfee_sumamt: Option<Box<RawValue>>,
    fund_pay_sumamt: Option<Box<RawValue>>,
    acct_pay: Option<Box<RawValue>>,
    psn_cash_pay: Option<Box<RawValue>>,
    state: &'static str,
}

impl From<&Row> for RowJson {
    fn from(r: &Row) -> RowJson {
        RowJson {
            setl_id: r.setl_id.clone(),
            msgid: r.msgid.clone(),
            omsgid: r.omsgid.clone(),
            mdtrt_id: r.mdtrt_id.clone(),
            fixmedins_code: r.fixmedins_code.clone(),
            insuplc_admdvs: r.insuplc_admdvs.to_string(),
            mdtrtarea_admvs: r.mdtrtarea_admvs.to_string(),
            insutype: r.insutype.clone(),
            med_type: r.med_type.clone(),
            clr_type: r.clr_type.clone(),
            setl_time: r.setl_time.to_string(),
            medfee_sumamt: yuan_opt(r.medfee_sumamt),
            fund_pay_sumamt: yuan_opt(r.fund_pay_sumamt),
            acct_pay: yuan_opt(r.acct_pay),
            psn_cash_pay: yuan_opt(r.psn_cash_pay),
            state: r.state.as_str(),
        }
    }
}

#[derive(Serialize)]
struct FieldJson {
    field: &'static str,
    gateway: String,
    region: String,
    difference: Option<Box<RawValue>>,
}

#[derive(Serialize)]
struct DiscrepancyJson {
    id: String,
    class: &'static str,
    setl_id: Option<String>,
    msgid: Option<String>,
    fixmedins_code: Option<String>,
    admdvs: String,
    insuplc_admdvs: Option<String>,
    mdtrtarea_admvs: Option<String>,
    side: Option<crate::reconcile::Side>,
    detail: String,
    /// For a late row: the closed day it is of.
    #[serde(skip_serializing_if = "Option::is_none")]
    late_of: Option<String>,
    fields: Vec<FieldJson>,
    gateway: Option<RowJson>,
    region: Option<RowJson>,
}

/// A discrepancy's stable id within its day: class and the key fields hashed.
pub fn discrepancy_id(d: &Discrepancy) -> String {
    use sha2::Digest;
    let row = d.row();
    let text = format!(
        "{}|{}|{}|{}|{}",
        d.class.as_str(),
        d.region,
        row.map_or("", |r| r.fixmedins_code.as_str()),
        row.and_then(Row::settling_msgid).unwrap_or_default(),
        row.map_or("", |r| r.state.as_str()),
    );
    let hash = sha2::Sha256::digest(text.as_bytes());
    contracts::hex::encode(&hash[..8])
}

impl From<&Discrepancy> for DiscrepancyJson {
    fn from(d: &Discrepancy) -> DiscrepancyJson {
        let row = d.row();
        DiscrepancyJson {
            id: discrepancy_id(d),
            class: d.class.as_str(),
            setl_id: row.and_then(|r| r.setl_id.clone()),
            msgid: row.and_then(|r| r.msgid.clone()),
            fixmedins_code: row.map(|r| r.fixmedins_code.clone()),
            admdvs: d.region.to_string(),
            insuplc_admdvs: row.map(|r| r.insuplc_admdvs.to_string()),
            mdtrtarea_admvs: row.map(|r| r.mdtrtarea_admvs.to_string()),
            side: d.side,
            detail: d.detail(),
            late_of: d.late_of.map(|day| day.to_string()),
            fields: d
                .fields
                .iter()
                .map(|f| FieldJson {
                    field: f.field,
                    gateway: f.gateway.clone(),
                    region: f.region.clone(),
                    difference: yuan_opt(f.difference),
                })
                .collect(),
            gateway: d.gateway.as_ref().map(RowJson::from),
            region: d.statement.as_ref().map(RowJson::from),
        }
    }
}

impl Report {
    /// The configured region's name.
    fn name(&self, code: Admdvs) -> String {
        self.regions
            .list
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, n)| n.clone())
            .unwrap_or_default()
    }

    /// Regions without a statement for the day.
    pub fn missing_statements(&self) -> Vec<Admdvs> {
        self.regions
            .list
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| !self.outcome.statements.iter().any(|s| s.region == *c))
            .collect()
    }

    /// `true` when every region sent its statement and everything matched.
    pub fn all_matched(&self) -> bool {
        self.outcome.all_matched() && self.missing_statements().is_empty()
    }

    /// The JSON report.
    pub fn to_json(&self) -> Vec<u8> {
        let totals: Vec<serde_json::Value> = self
            .outcome
            .totals
            .iter()
            .map(|(group, (g, r))| {
                serde_json::json!({
                    "admdvs": group.region.to_string(),
                    "insutype": group.insutype,
                    "clr_type": group.clr_type,
                    "matched": g.agrees(r),
                    "gateway": SumsJson::from(g),
                    "region": SumsJson::from(r),
                })
            })
            .collect();
        let counts: serde_json::Map<String, serde_json::Value> = Class::ALL
            .iter()
            .map(|c| {
                (
                    c.as_str().to_owned(),
                    serde_json::Value::from(self.outcome.counts.get(c).copied().unwrap_or(0)),
                )
            })
            .collect();
        let discrepancies: Vec<DiscrepancyJson> = self
            .outcome
            .discrepancies
            .iter()
            .map(DiscrepancyJson::from)
            .collect();
        let pairs: Vec<serde_json::Value> = self
            .clearing
            .pairs
            .iter()
            .map(|p| {
                serde_json::json!({
                    "insured": p.insured.to_string(),
                    "treatment": p.treatment.to_string(),
                    "count": p.owed.count,
                    "fund_pay_sumamt": yuan(p.owed.fund_pay_sumamt),
                    "acct_pay": yuan(p.owed.acct_pay),
                    "owed": yuan(p.total),
                })
            })
            .collect();
        let bilateral: Vec<serde_json::Value> = self
            .clearing
            .bilateral
            .iter()
            .map(|b| {
                serde_json::json!({
                    "a": b.a.to_string(),
                    "b": b.b.to_string(),
                    "net": yuan(b.net),
                })
            })
            .collect();
        let positions: Vec<serde_json::Value> = self
            .clearing
            .positions
            .iter()
            .map(|p| {
                serde_json::json!({
                    "admdvs": p.admdvs.to_string(),
                    "name": p.name,
                    "receives": yuan(p.receives),
                    "pays": yuan(p.pays),
                    "net": yuan(p.net),
                })
            })
            .collect();
        let statements: Vec<serde_json::Value> = self
            .outcome
            .statements
            .iter()
            .map(|s| {
                serde_json::json!({
                    "admdvs": s.region.to_string(),
                    "name": self.name(s.region),
                    "rows": s.rows,
                })
            })
            .collect();
        let listed = self.outcome.discrepancies.len() as u64;
        let total: u64 = self.outcome.counts.values().sum();
        let mut report = serde_json::json!({
            "date": self.day.to_string(),
            "status": if self.closure.is_some() { "closed" } else { "open" },
            "closed": self.closure,
            "matched": self.all_matched(),
            "sources": {
                "gateway_rows": self.outcome.gateway_rows,
                "late_rows": self.outcome.late_rows,
                "late_matched": self.outcome.late_matched,
                "statements": statements,
                "missing_statements": self.missing_statements().iter().map(ToString::to_string).collect::<Vec<_>>(),
            },
            "totals": totals,
            "discrepancy_counts": counts,
            "discrepancies_listed": listed,
            "discrepancies_truncated": listed < total,
            "discrepancies": discrepancies,
            "clearing": pairs,
            "bilateral": bilateral,
            "positions": positions,
            "disputes": self.disputes,
        });
        if let (Some(viewer), Some(object)) = (&self.viewer, report.as_object_mut()) {
            object.insert(
                "viewer".into(),
                serde_json::to_value(viewer).unwrap_or_default(),
            );
        }
        let mut bytes = serde_json::to_vec_pretty(&report).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// The report's sheets: positions, pairs, totals, discrepancies, disputes.
    pub fn sheets(&self) -> Vec<Sheet> {
        let amount = |m: Money| Cell::Amount(m.to_yuan_string());
        let amount_opt = |m: Option<Money>| m.map_or(Cell::Empty, amount);
        let text = |t: &str| Cell::Text(t.to_owned());
        let count = |n: u64| Cell::Integer(i64::try_from(n).unwrap_or(i64::MAX));
        let positions = Sheet {
            name: "净额头寸".into(),
            header: [
                "地区代码",
                "地区",
                "应收（元）",
                "应付（元）",
                "净额（元，正为应收）",
            ]
            .map(String::from)
            .to_vec(),
            rows: self
                .clearing
                .positions
                .iter()
                .map(|p| {
                    vec![
                        text(&p.admdvs.to_string()),
                        text(&p.name),
                        amount(p.receives),
                        amount(p.pays),
                        amount(p.net),
                    ]
                })
                .collect(),
        };
        let pairs = Sheet {
            name: "地区间应付".into(),
            header: [
                "参保地",
                "就医地",
                "笔数",
                "基金支付（元）",
                "个人账户支付（元）",
                "应付合计（元）",
            ]
            .map(String::from)
            .to_vec(),
            rows: self
                .clearing
                .pairs
                .iter()
                .map(|p| {
                    vec![
                        text(&format!("{} {}", p.insured, self.name(p.insured))),
                        text(&format!("{} {}", p.treatment, self.name(p.treatment))),
                        count(p.owed.count),
                        amount(p.owed.fund_pay_sumamt),
                        amount(p.owed.acct_pay),
                        amount(p.total),
                    ]
                })
                .collect(),
        };
        let totals = Sheet {
            name: "总账核对".into(),
            header: [
                "地区",
                "险种",
                "清算类别",
                "网关笔数",
                "地区笔数",
                "网关医疗费总额（元）",
                "地区医疗费总额（元）",
                "网关基金支付（元）",
                "地区基金支付（元）",
                "网关个人账户（元）",
                "地区个人账户（元）",
                "结果",
            ]
            .map(String::from)
            .to_vec(),
            rows: self
                .outcome
                .totals
                .iter()
                .map(|(group, (g, r))| {
                    vec![
                        text(&group.region.to_string()),
                        text(&group.insutype),
                        text(&group.clr_type),
                        count(g.count),
                        count(r.count),
                        amount(g.medfee_sumamt),
                        amount(r.medfee_sumamt),
                        amount(g.fund_pay_sumamt),
                        amount(r.fund_pay_sumamt),
                        amount(g.acct_pay),
                        amount(r.acct_pay),
                        text(if g.agrees(r) { "相符" } else { "不符" }),
                    ]
                })
                .collect(),
        };
        let discrepancies = Sheet {
            name: "差异明细".into(),
            header: [
                "差异类别",
                "类别代码",
                "地区",
                "结算流水号",
                "报文ID",
                "定点机构",
                "参保地",
                "就医地",
                "状态",
                "结算时间",
                "医疗费总额（元）",
                "基金支付（元）",
                "个人账户（元）",
                "说明",
            ]
            .map(String::from)
            .to_vec(),
            rows: self
                .outcome
                .discrepancies
                .iter()
                .map(|d| {
                    let row = d.row();
                    let field =
                        |f: &dyn Fn(&Row) -> String| row.map_or(Cell::Empty, |r| text(&f(r)));
                    vec![
                        text(d.class.name_zh()),
                        text(d.class.as_str()),
                        text(&d.region.to_string()),
                        field(&|r| r.setl_id.clone().unwrap_or_default()),
                        field(&|r| r.msgid.clone().unwrap_or_default()),
                        field(&|r| r.fixmedins_code.clone()),
                        field(&|r| r.insuplc_admdvs.to_string()),
                        field(&|r| r.mdtrtarea_admvs.to_string()),
                        field(&|r| r.state.as_str().to_owned()),
                        field(&|r| r.setl_time.to_string()),
                        row.map_or(Cell::Empty, |r| amount_opt(r.medfee_sumamt)),
                        row.map_or(Cell::Empty, |r| amount_opt(r.fund_pay_sumamt)),
                        row.map_or(Cell::Empty, |r| amount_opt(r.acct_pay)),
                        text(&d.detail()),
                    ]
                })
                .collect(),
        };
        let disputes = Sheet {
            name: "争议".into(),
            header: ["参保地", "结算流水号", "就诊ID", "理由", "时间"]
                .map(String::from)
                .to_vec(),
            rows: self
                .disputes
                .iter()
                .map(|d| {
                    vec![
                        text(&d.admdvs),
                        text(&d.setl_id),
                        text(d.mdtrt_id.as_deref().unwrap_or_default()),
                        text(d.memo.as_deref().unwrap_or_default()),
                        text(&d.at),
                    ]
                })
                .collect(),
        };
        vec![positions, pairs, totals, discrepancies, disputes]
    }

    /// The CSV report: UTF-8 with a byte-order mark (so spreadsheet programs
    /// read the Chinese headers), one section per sheet, separated by a blank
    /// line, each headed by its title and its own header row.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut out = String::from("\u{feff}");
        out.push_str(&format!("清算日,{}\n", self.day));
        for sheet in self.sheets() {
            out.push('\n');
            out.push_str(&format!("[{}]\n", sheet.name));
            out.push_str(&csv_line(sheet.header.iter().map(String::as_str)));
            for row in &sheet.rows {
                let cells: Vec<String> = row
                    .iter()
                    .map(|cell| match cell {
                        Cell::Text(t) | Cell::Amount(t) => t.clone(),
                        Cell::Integer(n) => n.to_string(),
                        Cell::Empty => String::new(),
                    })
                    .collect();
                out.push_str(&csv_line(cells.iter().map(String::as_str)));
            }
        }
        out.into_bytes()
    }

    /// The XLSX report.
    pub fn to_xlsx(&self) -> Vec<u8> {
        xlsx::workbook(&self.sheets())
    }
}

fn csv_line<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    let mut line = cells
        .map(|c| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}
