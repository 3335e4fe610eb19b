//! The sandbox policy engine against hand-computed examples from the shipped
//! parameter files (`deploy/sandbox/policy/*.toml`), and a randomised check
//! that every split balances.
//!
//! Every example settles on 2026-06-15 and writes its arithmetic in a
//! comment: amounts in yuan, "×" a ratio, shares rounded half up to the fen.

use contracts::model::settlement::SetlInfo;
use contracts::sample::Rng;
use contracts::validate::check_setlinfo;
use contracts::{Admdvs, Date, Effect, MedType, Money};
use gateway::sandbox::policy::{
    load_dir, Accumulators, Fees, Filing, Level, Owner, Policies, SettleError, Settlement, Split,
    Visit,
};
use gateway::sandbox::population::{person, with_check_character, Person, Scheme};

fn yuan(text: &str) -> Money {
    Money::parse_yuan(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn date(text: &str) -> Date {
    Date::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn region(code: &str) -> Admdvs {
    Admdvs::parse(code).unwrap_or_else(|e| panic!("{code}: {e}"))
}

fn policies() -> Policies {
    Policies::builtin().unwrap_or_else(|e| panic!("{e}"))
}

const DAY: &str = "2026-06-15";

/// The person with this full ID number, insured in `insured`, on [`DAY`].
fn someone(id: &str, insured: &str) -> Person {
    person(id, region(insured), date(DAY)).unwrap_or_else(|| panic!("{id} is a person"))
}

/// A filed visit on [`DAY`]; fees are F (wholly self-paid), O (over the
/// price limit), P (pre-self-paid), S (in scope).
fn visit(
    treatment: &str,
    level: Level,
    owner: Owner,
    med: &str,
    fees: [&str; 4],
    use_account: bool,
) -> Visit {
    Visit {
        treatment: region(treatment),
        level,
        owner,
        med_type: MedType::parse(med).unwrap_or_else(|e| panic!("{e}")),
        fees: Fees {
            fulamt_ownpay_amt: yuan(fees[0]),
            overlmt_selfpay: yuan(fees[1]),
            preselfpay_amt: yuan(fees[2]),
            inscp_scp_amt: yuan(fees[3]),
        },
        use_account,
        setl_date: date(DAY),
        filing: Filing::Filed,
    }
}

fn this_year() -> Accumulators {
    Accumulators {
        year: 2026,
        ..Accumulators::default()
    }
}

/// Settles and checks the balance rules (only `missing_setl_id` may be
/// reported: the caller sets setl_id).
fn settle(policies: &Policies, who: &Person, what: &Visit, before: &Accumulators) -> Settlement {
    let settlement = policies
        .settle(who, what, before)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_balanced(&settlement.split);
    settlement
}

fn assert_balanced(split: &Split) {
    let mut info = SetlInfo::default();
    split.fill_setlinfo(&mut info);
    let anomalies: Vec<_> = check_setlinfo(&info, Effect::Settle)
        .into_iter()
        .filter(|a| a.rule != "missing_setl_id")
        .collect();
    assert!(anomalies.is_empty(), "{anomalies:?} in {split:?}");
    info.setl_id = Some("S1".into());
    assert!(check_setlinfo(&info, Effect::Settle).is_empty());
}

/// The amounts that matter, as yuan text, for compact assertions:
/// (act_pay_dedc, hifp_pay, hifob_pay, hifmi_pay, cvlserv_pay, psn_part_amt, acct_pay, psn_cash_pay, balc).
fn amounts(split: &Split) -> [String; 9] {
    [
        split.act_pay_dedc,
        split.hifp_pay,
        split.hifob_pay,
        split.hifmi_pay,
        split.cvlserv_pay,
        split.psn_part_amt,
        split.acct_pay,
        split.psn_cash_pay,
        split.balc,
    ]
    .map(|m| m.to_string())
}

fn expect(split: &Split, wanted: [&str; 9]) {
    assert_eq!(
        amounts(split),
        wanted.map(str::to_owned),
        "(dedc, hifp, hifob, hifmi, cvlserv, psn_part, acct, cash, balc)"
    );
}

// ===================================================================== Beijing

/// 11010519860101001X: employee (15th 0), no chronic (16th 0), man (17th 1),
/// 40 years old; account tier 5 (6th digit) 1,500.00 + sequence 001 → 1,500.01.
const BJ_EMPLOYEE: &str = "11010519860101001X";
/// 110108195003010031: employee, man, 76: retired; account 6,000.00 + 0.03.
const BJ_RETIRED: &str = "110108195003010031";
/// 110102199005056017: resident (15th 6), man.
const BJ_RESIDENT: &str = "110102199005056017";
/// 110101198001014011: employee and civil servant (15th 4), man, 46;
/// account tier 1: 20.00 + sequence 401 → 24.01.
const BJ_CIVIL_SERVANT: &str = "110101198001014011";

#[test]
fn beijing_outpatient_crosses_the_yearly_deductible() {
    // In service, 三级 in Tianjin. Deductible 1,800 a year, 1,500 borne already:
    // 300 still due. In scope 1,000: deductible 300, payable 700 × 70% = 490.00.
    // Person: 1,070.00 − 490.00 = 580.00, all cash (account not used).
    let p = policies();
    let who = someone(BJ_EMPLOYEE, "110000");
    let mut before = this_year();
    before.outpatient.deductible_paid = yuan("1500.00");
    before.outpatient.inscope = yuan("1500.00");
    let v = visit(
        "120101",
        Level::Three,
        Owner::City,
        "11",
        ["50.00", "0", "20.00", "1000.00"],
        false,
    );
    let s = settle(&p, &who, &v, &before);
    assert_eq!(s.split.medfee_sumamt, yuan("1070.00"));
    expect(
        &s.split,
        [
            "300.00", "490.00", "0.00", "0.00", "0.00", "580.00", "0.00", "580.00", "1500.01",
        ],
    );
    assert_eq!(s.split.pool_prop_selfpay.to_string(), "0.3000");
    assert_eq!(s.after.outpatient.deductible_paid, yuan("1800.00"));
    assert_eq!(s.after.outpatient.inscope, yuan("2500.00"));
    assert_eq!(s.after.outpatient.fund_paid, yuan("490.00"));
}

#[test]
fn beijing_retired_second_admission_crosses_a_band_and_uses_the_account() {
    // Retired, 二级 in Beijing, 2nd admission: deductible 650 (later_deductible).
    // Year's in-scope amount so far 25,000, so the payable part runs from
    // 25,000 + 650 = 25,650 to 35,000:
    //   25,650–30,000: 4,350 × (87% + 5) = 4,350 × 92% = 4,002.00
    //   30,000–35,000: 5,000 × (92% + 5) = 5,000 × 97% = 4,850.00   → fund 8,852.00
    // Total 10,500.00; person 1,648.00, from the account (6,000.03 → 4,352.03).
    let p = policies();
    let who = someone(BJ_RETIRED, "110000");
    assert!(who.retired);
    let mut before = this_year();
    before.admissions = 1;
    before.inpatient.inscope = yuan("25000.00");
    before.inpatient.deductible_paid = yuan("1300.00");
    before.inpatient.fund_paid = yuan("22000.00");
    let v = visit(
        "110102",
        Level::Two,
        Owner::City,
        "21",
        ["0", "0", "500.00", "10000.00"],
        true,
    );
    let s = settle(&p, &who, &v, &before);
    expect(
        &s.split,
        [
            "650.00", "8852.00", "0.00", "0.00", "0.00", "1648.00", "1648.00", "0.00", "4352.03",
        ],
    );
    assert_eq!(s.split.pool_prop_selfpay.to_string(), "0.0800");
    assert_eq!(s.after.admissions, 2);
    assert_eq!(s.after.account_used, yuan("1648.00"));
}

#[test]
fn beijing_in_service_crosses_the_pooled_cap_into_the_large_amount_supplement() {
    // In service, 三级, 3rd admission: deductible 650. Year so far: in scope
    // 400,000, fund 295,000 of the 300,000 cap (room 5,000).
    // Payable 20,000 − 650 = 19,350, all above 40,000: 三级 95%.
    // 19,350 × 95% = 18,382.50 > room, so the fund pays 5,000.00, which covers
    // ceil(5,000 ÷ 0.95) = 5,263.16 of expense; over the cap 19,350 − 5,263.16 = 14,086.84.
    // Large-amount 14,086.84 × 85% = 11,973.814 → 11,973.81.
    // Person 20,000 − 5,000 − 11,973.81 = 3,026.19, cash.
    let p = policies();
    let who = someone(BJ_EMPLOYEE, "110000");
    let mut before = this_year();
    before.admissions = 2;
    before.inpatient.inscope = yuan("400000.00");
    before.inpatient.fund_paid = yuan("295000.00");
    let v = visit(
        "130102",
        Level::Three,
        Owner::Provincial,
        "21",
        ["0", "0", "0", "20000.00"],
        false,
    );
    let s = settle(&p, &who, &v, &before);
    expect(
        &s.split,
        [
            "650.00", "5000.00", "11973.81", "0.00", "0.00", "3026.19", "0.00", "3026.19",
            "1500.01",
        ],
    );
    assert_eq!(s.split.fund_pay_sumamt, yuan("16973.81"));
    assert_eq!(s.after.inpatient.fund_paid, yuan("300000.00"));
    assert_eq!(s.after.large_amount_paid, yuan("11973.81"));
    let detail = s.split.setldetail();
    let types: Vec<_> = detail
        .iter()
        .filter_map(|d| d.fund_pay_type.clone())
        .collect();
    assert_eq!(types, ["310100", "330100"]);
    assert_eq!(detail[0].crt_payb_lmt_amt, Some(yuan("5000.00")));
}

#[test]
fn beijing_resident_unfiled_care_outside_the_region_is_cut_20_points() {
    // Resident, 三级 in Shanghai (310000), unfiled: 75% − 20 = 55%.
    // 1st admission, deductible 1,300; in scope 21,300: payable 20,000 × 55% = 11,000.00.
    // Critical illness: qualifying 21,300 − 11,000 = 10,300, below 30,000: nothing.
    // Person 22,300 − 11,000 = 11,300.00 (residents have no account: balc 0).
    let p = policies();
    let who = someone(BJ_RESIDENT, "110000");
    assert_eq!(who.scheme, Scheme::Resident);
    let mut v = visit(
        "310104",
        Level::Three,
        Owner::City,
        "21",
        ["1000.00", "0", "0", "21300.00"],
        true,
    );
    v.filing = Filing::Unfiled;
    let s = settle(&p, &who, &v, &this_year());
    expect(
        &s.split,
        [
            "1300.00", "11000.00", "0.00", "0.00", "0.00", "11300.00", "0.00", "11300.00", "0.00",
        ],
    );
    assert_eq!(s.split.pool_prop_selfpay.to_string(), "0.4500");
    assert_eq!(s.after.critical_base, yuan("10300.00"));
    // The same care inside Beijing–Tianjin–Hebei counts as filed: 75%.
    // 20,000 × 75% = 15,000.00.
    let mut inside = v.clone();
    inside.treatment = region("130100");
    let s = settle(&p, &who, &inside, &this_year());
    assert_eq!(s.split.hifp_pay, yuan("15000.00"));
    // Unfiled referral or emergency: −10 points, 65%: 13,000.00.
    let mut urgent = v.clone();
    urgent.filing = Filing::UnfiledUrgent;
    let s = settle(&p, &who, &urgent, &this_year());
    assert_eq!(s.split.hifp_pay, yuan("13000.00"));
}

#[test]
fn beijing_resident_critical_illness_insurance_pays_above_its_deductible() {
    // Resident, 三级 in Beijing, 2nd admission: half of 1,300 = 650.
    // In scope 40,000: payable 39,350 × 75% = 29,512.50.
    // Critical illness: qualifying 40,000 − 29,512.50 = 10,487.50; the year's
    // qualifying amount runs from 25,000 to 35,487.50; above the 30,000
    // deductible: 5,487.50 × 60% = 3,292.50.
    // Funds 32,805.00; person 7,195.00.
    let p = policies();
    let who = someone(BJ_RESIDENT, "110000");
    let mut before = this_year();
    before.admissions = 1;
    before.inpatient.inscope = yuan("30000.00");
    before.inpatient.fund_paid = yuan("20000.00");
    before.critical_base = yuan("25000.00");
    let v = visit(
        "110105",
        Level::Three,
        Owner::City,
        "21",
        ["0", "0", "0", "40000.00"],
        false,
    );
    let s = settle(&p, &who, &v, &before);
    expect(
        &s.split,
        [
            "650.00", "29512.50", "0.00", "3292.50", "0.00", "7195.00", "0.00", "7195.00", "0.00",
        ],
    );
    assert_eq!(s.after.critical_base, yuan("35487.50"));
    assert_eq!(s.after.critical_paid, yuan("3292.50"));
}

#[test]
fn beijing_civil_servant_subsidy_and_an_account_running_dry() {
    // Civil servant in service, 一级 outpatient, year's deductible met.
    // In scope 200: fund 200 × 90% = 180.00; subsidy (200 − 0 − 180) × 50% = 10.00.
    // Person 210.00 − 190.00 = 20.00. Account 24.01 opening, 10.00 spent
    // earlier: 14.01 left, all used; cash 5.99; balance 0.00.
    let p = policies();
    let who = someone(BJ_CIVIL_SERVANT, "110000");
    assert!(who.civil_servant);
    assert_eq!(who.account_balance, yuan("24.01"));
    let mut before = this_year();
    before.outpatient.deductible_paid = yuan("1800.00");
    before.account_used = yuan("10.00");
    let v = visit(
        "120102",
        Level::One,
        Owner::City,
        "11",
        ["10.00", "0", "0", "200.00"],
        true,
    );
    let s = settle(&p, &who, &v, &before);
    expect(
        &s.split,
        [
            "0.00", "180.00", "0.00", "0.00", "10.00", "20.00", "14.01", "5.99", "0.00",
        ],
    );
    assert_eq!(s.after.account_used, yuan("24.01"));
    // Next visit: nothing left in the account, all cash.
    let s2 = settle(&p, &who, &v, &s.after);
    expect(
        &s2.split,
        [
            "0.00", "180.00", "0.00", "0.00", "10.00", "20.00", "0.00", "20.00", "0.00",
        ],
    );
}

// ===================================================================== Tianjin

/// 120101198001010012: employee, man, 46; account 20.00 + 0.01.
const TJ_EMPLOYEE: &str = "120101198001010012";
/// 120103195001010011: employee, man, 76 (retired, 70+); account 300.00 + 0.01.
const TJ_RETIRED_70: &str = "120103195001010011";
/// 120101199501016028: resident, woman.
const TJ_RESIDENT: &str = "120101199501016028";

#[test]
fn tianjin_outpatient_crosses_the_5500_band() {
    // In service, 二级, deductible met; year's in scope so far 5,000.
    // 5,000–5,500: 500 × 65% = 325.00; 5,500–6,000: 500 × 55% = 275.00 → 600.00.
    // Person 400.00.
    let p = policies();
    let who = someone(TJ_EMPLOYEE, "120000");
    let mut before = this_year();
    before.outpatient.deductible_paid = yuan("800.00");
    before.outpatient.inscope = yuan("5000.00");
    let v = visit(
        "110105",
        Level::Two,
        Owner::City,
        "11",
        ["0", "0", "0", "1000.00"],
        false,
    );
    let s = settle(&p, &who, &v, &before);
    expect(
        &s.split,
        [
            "0.00", "600.00", "0.00", "0.00", "0.00", "400.00", "0.00", "400.00", "20.01",
        ],
    );
    assert_eq!(s.split.pool_prop_selfpay.to_string(), "0.3500");
}

#[test]
fn tianjin_retired_from_70_has_the_650_deductible_and_5_more_points() {
    // Retired, 76: variants "retired" (700, +5) then "retired, 70+" (650).
    // New year (accumulators of 2025 are reset). 一级, in scope 1,000:
    // deductible 650; 350 × (75% + 5) = 280.00. Person 1,100 − 280 = 820.00.
    let p = policies();
    let who = someone(TJ_RETIRED_70, "120000");
    let old = Accumulators {
        year: 2025,
        admissions: 3,
        account_used: yuan("100.00"),
        ..Accumulators::default()
    };
    let v = visit(
        "120103",
        Level::One,
        Owner::City,
        "11",
        ["0", "0", "100.00", "1000.00"],
        false,
    );
    let s = settle(&p, &who, &v, &old);
    expect(
        &s.split,
        [
            "650.00", "280.00", "0.00", "0.00", "0.00", "820.00", "0.00", "820.00", "200.01",
        ],
    );
    assert_eq!(s.after.year, 2026);
    assert_eq!(s.after.admissions, 0);
    assert_eq!(s.after.account_used, yuan("100.00"));
}

#[test]
fn tianjin_second_admission_has_the_lower_deductible_and_the_account_runs_dry() {
    // In service, 三级, 2nd admission: deductible 500 (first would be 1,700).
    // In scope 10,000: 9,500 × 80% = 7,600.00. Person 10,200 − 7,600 = 2,600.00:
    // account 20.01 (all of it), cash 2,579.99.
    let p = policies();
    let who = someone(TJ_EMPLOYEE, "120000");
    let mut before = this_year();
    before.admissions = 1;
    let v = visit(
        "130602",
        Level::Three,
        Owner::City,
        "21",
        ["200.00", "0", "0", "10000.00"],
        true,
    );
    let s = settle(&p, &who, &v, &before);
    expect(
        &s.split,
        [
            "500.00", "7600.00", "0.00", "0.00", "0.00", "2600.00", "20.01", "2579.99", "0.00",
        ],
    );
    // The first admission: 1,700; 8,300 × 80% = 6,640.00.
    let s = settle(&p, &who, &v, &this_year());
    assert_eq!(
        (s.split.act_pay_dedc, s.split.hifp_pay),
        (yuan("1700.00"), yuan("6640.00"))
    );
}

#[test]
fn tianjin_resident_second_admission_has_no_deductible() {
    // Resident, 二级. 1st admission: deductible 500; 7,500 × 70% = 5,250.00.
    // 2nd admission: deductible 0; 8,000 × 70% = 5,600.00.
    let p = policies();
    let who = someone(TJ_RESIDENT, "120000");
    let v = visit(
        "110101",
        Level::Two,
        Owner::City,
        "21",
        ["0", "0", "0", "8000.00"],
        false,
    );
    let first = settle(&p, &who, &v, &this_year());
    assert_eq!(
        (first.split.act_pay_dedc, first.split.hifp_pay),
        (yuan("500.00"), yuan("5250.00"))
    );
    let second = settle(&p, &who, &v, &first.after);
    expect(
        &second.split,
        [
            "0.00", "5600.00", "0.00", "0.00", "0.00", "2400.00", "0.00", "2400.00", "0.00",
        ],
    );
}

#[test]
fn tianjin_outpatient_cap_and_unfiled_emergency() {
    // Outpatient fund paid 9,900 of the 10,000 cap; 三级, above 5,500: 55%.
    // 1,000 × 55% = 550.00 > room 100: the fund pays 100.00. No large-amount
    // supplement for outpatient care. Person 900.00.
    let p = policies();
    let who = someone(TJ_EMPLOYEE, "120000");
    let mut before = this_year();
    before.outpatient = gateway::sandbox::policy::PoolToDate {
        deductible_paid: yuan("800.00"),
        inscope: yuan("20000.00"),
        fund_paid: yuan("9900.00"),
    };
    let v = visit(
        "120101",
        Level::Three,
        Owner::City,
        "11",
        ["0", "0", "0", "1000.00"],
        false,
    );
    let s = settle(&p, &who, &v, &before);
    expect(
        &s.split,
        [
            "0.00", "100.00", "0.00", "0.00", "0.00", "900.00", "0.00", "900.00", "20.01",
        ],
    );
    assert_eq!(s.after.outpatient.fund_paid, yuan("10000.00"));
    // Unfiled emergency admission in Guangzhou, 二级: 85% − 10 = 75%.
    // Deductible 1,100; 10,000 × 75% = 7,500.00.
    let mut v = visit(
        "440104",
        Level::Two,
        Owner::City,
        "21",
        ["0", "0", "0", "11100.00"],
        false,
    );
    v.filing = Filing::UnfiledUrgent;
    let s = settle(&p, &who, &v, &this_year());
    assert_eq!(
        (s.split.act_pay_dedc, s.split.hifp_pay),
        (yuan("1100.00"), yuan("7500.00"))
    );
}

// ======================================================================= Hebei

/// 130102195501010013: Shijiazhuang county, employee, man, 71 (retired); account 100.01.
const SJZ_RETIRED: &str = "130102195501010013";
/// 13010219760101001X: employee, man, 50.
const SJZ_50: &str = "13010219760101001X";
/// 130102198601010014: employee, man, 40.
const SJZ_40: &str = "130102198601010014";
/// 130102199001016011: resident, man.
const SJZ_RESIDENT: &str = "130102199001016011";
/// 130602198001010018: Baoding county, employee, man, 46; account 100.01.
const BD_EMPLOYEE: &str = "130602198001010018";
/// 130602198001016014: Baoding county, resident (15th 6), man (17th 1).
const BD_RESIDENT: &str = "130602198001016014";
/// 130602198001010915: employee registered for dialysis (16th 9).
const BD_DIALYSIS: &str = "130602198001010915";
/// 133100198001010010: Xiong'an, employee, empty account (6th digit 0).
const XA_EMPLOYEE: &str = "133100198001010010";

#[test]
fn shijiazhuang_retired_at_a_provincial_tertiary_hospital() {
    // 省属三级: deductible 900 − 100 (retired) = 800; 82% + 3 = 85%.
    // In scope 20,800: 20,000 × 85% = 17,000.00. Person 21,300 − 17,000 = 4,300.00;
    // account 100.01 used up, cash 4,199.99.
    let p = policies();
    let who = someone(SJZ_RETIRED, "130102");
    let v = visit(
        "110105",
        Level::Three,
        Owner::Provincial,
        "21",
        ["500.00", "0", "0", "20800.00"],
        true,
    );
    let s = settle(&p, &who, &v, &this_year());
    expect(
        &s.split,
        [
            "800.00", "17000.00", "0.00", "0.00", "0.00", "4300.00", "100.01", "4199.99", "0.00",
        ],
    );
    // 市属三级: 600 − 100 = 500; 85% + 3 = 88%: 20,300 × 88% = 17,864.00.
    let v = visit(
        "110105",
        Level::Three,
        Owner::City,
        "21",
        ["500.00", "0", "0", "20800.00"],
        false,
    );
    let s = settle(&p, &who, &v, &this_year());
    assert_eq!(
        (s.split.act_pay_dedc, s.split.hifp_pay),
        (yuan("500.00"), yuan("17864.00"))
    );
}

#[test]
fn shijiazhuang_outpatient_cap_depends_on_age() {
    // Fund paid 3,600 this year; in scope 500 at 60% = 300.00.
    // Aged 50: cap 4,500, room 900: pays 300.00. Aged 40: cap 3,500, no room: 0.00.
    let p = policies();
    let mut before = this_year();
    before.outpatient.deductible_paid = yuan("100.00");
    before.outpatient.fund_paid = yuan("3600.00");
    let v = visit(
        "120101",
        Level::Two,
        Owner::City,
        "11",
        ["0", "0", "0", "500.00"],
        false,
    );
    let s = settle(&p, &someone(SJZ_50, "130100"), &v, &before);
    assert_eq!(s.split.hifp_pay, yuan("300.00"));
    let s = settle(&p, &someone(SJZ_40, "130100"), &v, &before);
    assert_eq!(s.split.hifp_pay, yuan("0.00"));
    assert_eq!(s.split.psn_part_amt, yuan("500.00"));
}

#[test]
fn shijiazhuang_resident_outpatient_caps_by_level() {
    // No deductible. Fund paid 150 this year.
    // 二级: cap 200, room 50; 200 × 50% = 100.00 > 50: pays 50.00.
    // 一级: cap 400, room 250; 200 × 90% = 180.00.
    let p = policies();
    let who = someone(SJZ_RESIDENT, "130100");
    let mut before = this_year();
    before.outpatient.fund_paid = yuan("150.00");
    let v = visit(
        "110101",
        Level::Two,
        Owner::City,
        "11",
        ["0", "0", "0", "200.00"],
        false,
    );
    let s = settle(&p, &who, &v, &before);
    expect(
        &s.split,
        [
            "0.00", "50.00", "0.00", "0.00", "0.00", "150.00", "0.00", "150.00", "0.00",
        ],
    );
    let v = visit(
        "110101",
        Level::One,
        Owner::City,
        "11",
        ["0", "0", "0", "200.00"],
        false,
    );
    let s = settle(&p, &who, &v, &before);
    assert_eq!(s.split.hifp_pay, yuan("180.00"));
}

#[test]
fn shijiazhuang_resident_critical_illness_crosses_two_bands() {
    // 市属三级, 1st admission: deductible 1,000; 30,000 × 65% = 19,500.00.
    // Qualifying 31,000 − 19,500 = 11,500; the year's runs 95,000 → 106,500:
    //   95,000–100,000: 5,000 × 60% = 3,000.00; 100,000–106,500: 6,500 × 70% = 4,550.00
    // Critical illness 7,550.00. Funds 27,050.00; person 3,950.00.
    let p = policies();
    let who = someone(SJZ_RESIDENT, "130100");
    let mut before = this_year();
    before.critical_base = yuan("95000.00");
    let v = visit(
        "120101",
        Level::Three,
        Owner::City,
        "21",
        ["0", "0", "0", "31000.00"],
        false,
    );
    let s = settle(&p, &who, &v, &before);
    expect(
        &s.split,
        [
            "1000.00", "19500.00", "0.00", "7550.00", "0.00", "3950.00", "0.00", "3950.00", "0.00",
        ],
    );
    let types: Vec<_> = s
        .split
        .setldetail()
        .iter()
        .filter_map(|d| d.fund_pay_type.clone())
        .collect();
    assert_eq!(types, ["390100", "390200"]);
}

#[test]
fn baoding_later_admissions_lower_the_deductible_by_100_down_to_200() {
    // 市属三级, 3rd admission: 800 − 2 × 100 = 600; 10,000 × 85% = 8,500.00.
    // 一级, 3rd admission: 200 − 200 = 0, but not below the floor 200: 200.
    let p = policies();
    let who = someone(BD_EMPLOYEE, "130600");
    let mut before = this_year();
    before.admissions = 2;
    let v = visit(
        "110101",
        Level::Three,
        Owner::City,
        "21",
        ["0", "0", "0", "10600.00"],
        false,
    );
    let s = settle(&p, &who, &v, &before);
    expect(
        &s.split,
        [
            "600.00", "8500.00", "0.00", "0.00", "0.00", "2100.00", "0.00", "2100.00", "100.01",
        ],
    );
    let v = visit(
        "110101",
        Level::One,
        Owner::City,
        "21",
        ["0", "0", "0", "10600.00"],
        false,
    );
    let s = settle(&p, &who, &v, &before);
    // 10,400 × 92% = 9,568.00.
    assert_eq!(
        (s.split.act_pay_dedc, s.split.hifp_pay),
        (yuan("200.00"), yuan("9568.00"))
    );
}

#[test]
fn baoding_cap_and_large_amount() {
    // 二级, 1st admission: deductible 500; fund paid 199,000 of 200,000 (room 1,000).
    // 10,000 × 88% = 8,800.00 > 1,000: fund 1,000.00, covering
    // ceil(1,000 ÷ 0.88) = 1,136.37; over 10,000 − 1,136.37 = 8,863.63.
    // Large-amount 8,863.63 × 90% = 7,977.267 → 7,977.27.
    // Person 10,500 − 8,977.27 = 1,522.73.
    let p = policies();
    let who = someone(BD_EMPLOYEE, "130600");
    let mut before = this_year();
    before.inpatient.fund_paid = yuan("199000.00");
    let v = visit(
        "120101",
        Level::Two,
        Owner::City,
        "21",
        ["0", "0", "0", "10500.00"],
        false,
    );
    let s = settle(&p, &who, &v, &before);
    expect(
        &s.split,
        [
            "500.00", "1000.00", "7977.27", "0.00", "0.00", "1522.73", "0.00", "1522.73", "100.01",
        ],
    );
}

#[test]
fn baoding_resident_outpatient_is_primary_care_only() {
    // 二级: 0%. Deductible 50 still borne; fund 0.00; pool_prop_selfpay 1.
    // 一级 afterwards: deductible met; 300 × 50% = 150.00 (cap 200).
    let p = policies();
    let who = someone(BD_RESIDENT, "130600");
    let v = visit(
        "110101",
        Level::Two,
        Owner::City,
        "11",
        ["0", "0", "0", "300.00"],
        false,
    );
    let s = settle(&p, &who, &v, &this_year());
    expect(
        &s.split,
        [
            "50.00", "0.00", "0.00", "0.00", "0.00", "300.00", "0.00", "300.00", "0.00",
        ],
    );
    assert_eq!(s.split.pool_prop_selfpay.to_string(), "1.0000");
    let v = visit(
        "110101",
        Level::One,
        Owner::City,
        "11",
        ["0", "0", "0", "300.00"],
        false,
    );
    let s = settle(&p, &who, &v, &s.after);
    assert_eq!(
        (s.split.act_pay_dedc, s.split.hifp_pay),
        (yuan("0.00"), yuan("150.00"))
    );
}

#[test]
fn baoding_chronic_dialysis_and_an_unregistered_person() {
    // Dialysis (major): 二级 chronic, yearly deductible 500; 2,000 × 88% = 1,760.00.
    // Person 740.00 in cash; the account (100.00 + sequence 091 = 100.91) is untouched.
    let p = policies();
    let who = someone(BD_DIALYSIS, "130600");
    let v = visit(
        "110101",
        Level::Two,
        Owner::City,
        "14",
        ["0", "0", "0", "2500.00"],
        false,
    );
    let s = settle(&p, &who, &v, &this_year());
    expect(
        &s.split,
        [
            "500.00", "1760.00", "0.00", "0.00", "0.00", "740.00", "0.00", "740.00", "100.91",
        ],
    );
    assert_eq!(
        s.split.setldetail()[0].crt_payb_lmt_amt,
        Some(yuan("200000.00"))
    );
    // Without a registration: refused.
    let nobody = someone(BD_EMPLOYEE, "130600");
    assert_eq!(
        p.settle(&nobody, &v, &this_year()).err(),
        Some(SettleError::NotRegistered)
    );
}

#[test]
fn xiongan_and_other_hebei_cities_use_the_default() {
    // Xiong'an employee, 省属三级, 1st admission: default (Baoding's) 1,000 / 82%.
    // In scope 11,000: 10,000 × 82% = 8,200.00. Empty account: all cash.
    let p = policies();
    let who = someone(XA_EMPLOYEE, "133100");
    let v = visit(
        "110101",
        Level::Three,
        Owner::Provincial,
        "21",
        ["0", "0", "0", "11000.00"],
        true,
    );
    let s = settle(&p, &who, &v, &this_year());
    expect(
        &s.split,
        [
            "1000.00", "8200.00", "0.00", "0.00", "0.00", "2800.00", "0.00", "2800.00", "0.00",
        ],
    );
    let hebei = &p.hebei;
    assert!(std::ptr::eq(hebei.local(region("133100")), &hebei.default));
    assert!(std::ptr::eq(hebei.local(region("130203")), &hebei.default));
    assert!(std::ptr::eq(
        hebei.local(region("130602")),
        &hebei.cities[1].policy
    ));
    assert!(std::ptr::eq(
        hebei.local(region("130100")),
        &hebei.cities[0].policy
    ));
}

#[test]
fn pharmacy_purchases_are_outpatient_care_at_the_pharmacy_level() {
    // Shijiazhuang employee aged 40, pharmacy (41): outpatient, 60%.
    // Deductible 100 not yet borne: in scope 150 → 100 + 50 × 60% = 30.00.
    // Person 120.00; the account (6th digit 2: 100.00 + sequence 001 = 100.01)
    // pays 100.01, cash 19.99.
    let p = policies();
    let who = someone(SJZ_40, "130100");
    let v = visit(
        "110101",
        Level::Three,
        Owner::City,
        "41",
        ["0", "0", "0", "150.00"],
        true,
    );
    let s = settle(&p, &who, &v, &this_year());
    expect(
        &s.split,
        [
            "100.00", "30.00", "0.00", "0.00", "0.00", "120.00", "100.01", "19.99", "0.00",
        ],
    );
    assert_eq!(s.split.clr_type.code(), "41");
}

// =================================================================== the rest

#[test]
fn a_cancel_negates_everything_and_reverts_the_accumulators() {
    let p = policies();
    let who = someone(BJ_RETIRED, "110000");
    let v = visit(
        "110102",
        Level::Two,
        Owner::City,
        "21",
        ["10.00", "0", "500.00", "10000.00"],
        true,
    );
    let before = this_year();
    let s = settle(&p, &who, &v, &before);
    let cancel = s.split.cancelled();
    let mut info = SetlInfo::default();
    cancel.fill_setlinfo(&mut info);
    info.setl_id = Some("S2".into());
    assert!(check_setlinfo(&info, Effect::CancelSettlement).is_empty());
    assert_eq!(cancel.medfee_sumamt, s.split.medfee_sumamt.negated());
    assert_eq!(cancel.balc, who.account_balance);
    let mut after = s.after;
    after.revert(&s.delta);
    assert_eq!(after, before);
}

#[test]
fn load_dir_reads_the_shipped_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/sandbox/policy");
    let loaded = load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded, policies());
    assert!(load_dir(dir.join("nowhere")).is_err());
}

#[test]
fn bad_files_are_refused_naming_the_key() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/sandbox/policy");
    let read =
        |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
    let (bj, tj, hb) = (
        read("beijing.toml"),
        read("tianjin.toml"),
        read("hebei.toml"),
    );
    let cases = [
        // A float instead of yuan text.
        (
            bj.replacen("cap = { all = \"20000.00\" }", "cap = { all = 20000.0 }", 1),
            "beijing.toml",
        ),
        // A level missing.
        (
            bj.replacen(
                "ratio = { level1 = \"0.90\", level2 = \"0.70\", level3 = \"0.70\" }",
                "ratio = { level1 = \"0.90\", level2 = \"0.70\" }",
                1,
            ),
            "employee.outpatient.ratio.level3",
        ),
        // A zero cap.
        (
            bj.replacen(
                "cap = { all = \"20000.00\" }",
                "cap = { all = \"0.00\" }",
                1,
            ),
            "employee.outpatient.cap.all",
        ),
        // Fen fractions.
        (
            bj.replacen(
                "deductible = { all = \"1800.00\" }",
                "deductible = { all = \"1800.001\" }",
                1,
            ),
            "employee.outpatient.deductible.all",
        ),
        // An unknown key.
        (
            bj.replacen("[pharmacy]\n", "[pharmacy]\ncolour = \"red\"\n", 1),
            "colour",
        ),
        // Missing confidence.
        (bj.replacen("confidence = \"repo\"\n", "", 1), "confidence"),
    ];
    for (text, needle) in cases {
        let err = Policies::parse(&text, &tj, &hb)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(needle), "{needle}: {err}");
    }
    // Hebei's 三级 split by owner: dropping level3_provincial without a level3 is refused.
    let broken = hb.replacen(", level3_provincial = \"1000.00\" }", " }", 1);
    let err = Policies::parse(&bj, &tj, &broken)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("employee.inpatient.deductible.level3_provincial"),
        "{err}"
    );
    // A file for the wrong province.
    let err = Policies::parse(&tj, &tj, &hb)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("beijing.toml: region"), "{err}");
}

#[test]
fn the_shipped_ids_of_the_documentation_are_valid() {
    for id in [
        BJ_EMPLOYEE,
        BJ_RETIRED,
        BJ_RESIDENT,
        BJ_CIVIL_SERVANT,
        TJ_EMPLOYEE,
        TJ_RETIRED_70,
        TJ_RESIDENT,
        SJZ_RETIRED,
        SJZ_50,
        SJZ_40,
        SJZ_RESIDENT,
        BD_EMPLOYEE,
        BD_RESIDENT,
        BD_DIALYSIS,
        XA_EMPLOYEE,
    ] {
        assert_eq!(with_check_character(&id[..17]).as_deref(), Some(id));
    }
}

/// Every row of the ready-made people in `contracts/sandbox.md` is what
/// `person()` derives, and the "not found" examples are not found.
#[test]
fn the_documented_population_table_is_true() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/sandbox.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
    let mut rows = 0;
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 9, "{line}");
        let id = cells[0].trim_matches('`');
        let who = person(id, region(cells[1]), date(DAY)).unwrap_or_else(|| panic!("{line}"));
        let scheme = match who.scheme {
            Scheme::Employee => "employee 310",
            Scheme::Resident => "resident 390",
        };
        let sex = match who.sex {
            gateway::sandbox::population::Sex::Male => "man",
            gateway::sandbox::population::Sex::Female => "woman",
        };
        let yes = |b: bool| if b { "yes" } else { "no" };
        let chronic: Vec<&str> = who
            .chronic
            .iter()
            .map(|d| match d {
                gateway::sandbox::population::ChronicDisease::Hypertension => "hypertension",
                gateway::sandbox::population::ChronicDisease::Diabetes => "diabetes",
                gateway::sandbox::population::ChronicDisease::Cancer => "cancer",
                gateway::sandbox::population::ChronicDisease::Dialysis => "dialysis",
                gateway::sandbox::population::ChronicDisease::AntiRejection => "anti-rejection",
            })
            .collect();
        let chronic = if chronic.is_empty() {
            "—".to_owned()
        } else {
            chronic.join(", ")
        };
        let derived = [
            scheme.to_owned(),
            sex.to_owned(),
            who.age.to_string(),
            yes(who.retired).to_owned(),
            yes(who.civil_servant).to_owned(),
            chronic,
            who.account_balance.to_string(),
        ];
        assert_eq!(derived.to_vec(), cells[2..].to_vec(), "{line}");
        rows += 1;
    }
    assert!(rows >= 30, "{rows} rows");
    assert!(person("110105198001010017", region("110000"), date(DAY)).is_none());
    assert!(person("110105198002300015", region("110000"), date(DAY)).is_none());
    assert!(doc.contains("`110105198001010017`") && doc.contains("`110105198002300015`"));
}

// ======================================================= randomised balancing

const INSURED: [&str; 12] = [
    "110000", "110105", "120000", "120103", "130000", "130100", "130102", "130600", "130681",
    "133100", "130200", "131000",
];
const TREATED: [&str; 8] = [
    "110105", "120101", "130100", "130602", "133100", "310104", "440104", "510107",
];
const MED: [&str; 7] = ["11", "12", "13", "14", "21", "41", "21"];

fn one_of(rng: &mut Rng, items: &[&'static str]) -> &'static str {
    items[rng.below(items.len() as u64) as usize]
}

fn random_id(rng: &mut Rng) -> String {
    let mut first17 = String::new();
    first17.push_str(one_of(
        rng,
        &["110105", "120101", "130602", "133100", "130100", "110100"],
    ));
    let year = rng.between(1930, 2025);
    let month = rng.between(1, 12);
    let day = rng.between(1, 28);
    first17.push_str(&format!(
        "{year:04}{month:02}{day:02}{:03}",
        rng.between(0, 999)
    ));
    with_check_character(&first17).unwrap_or_default()
}

fn random_amount(rng: &mut Rng) -> Money {
    let fen = match rng.below(6) {
        0 => 0,
        1 => rng.between(1, 100),
        2 => rng.between(1, 100_000),
        3 => rng.between(1, 5_000_000),
        4 => rng.between(1, 100_000_000),
        _ => rng.between(1, 500_000_000),
    };
    Money::from_fen(fen).unwrap_or_default()
}

fn random_visit(rng: &mut Rng) -> Visit {
    Visit {
        treatment: region(one_of(rng, &TREATED)),
        level: *rng.pick(&[Level::One, Level::Two, Level::Three]),
        owner: *rng.pick(&[Owner::City, Owner::Provincial]),
        med_type: MedType::parse(one_of(rng, &MED)).unwrap_or(MedType::Outpatient),
        fees: Fees {
            fulamt_ownpay_amt: if rng.chance(50) {
                Money::ZERO
            } else {
                random_amount(rng)
            },
            overlmt_selfpay: if rng.chance(70) {
                Money::ZERO
            } else {
                random_amount(rng)
            },
            preselfpay_amt: if rng.chance(50) {
                Money::ZERO
            } else {
                random_amount(rng)
            },
            inscp_scp_amt: random_amount(rng),
        },
        use_account: rng.chance(60),
        setl_date: date(one_of(
            rng,
            &[
                "2025-12-31",
                "2026-01-01",
                "2026-06-15",
                "2026-06-15",
                "2026-06-15",
            ],
        )),
        filing: *rng.pick(&[Filing::Filed, Filing::UnfiledUrgent, Filing::Unfiled]),
    }
}

/// Thousands of random people each settling a random run of visits: every
/// split balances to the fen, no fund pays more than the in-scope amount,
/// caps hold, the account never goes below zero, and cancelling restores the
/// accumulators. (A seeded generator stands in for proptest, which is not a
/// dev-dependency of the gateway crate.)
#[test]
fn every_split_balances() {
    let p = policies();
    let mut rng = Rng::new(0x5EED_2026);
    let mut settled = 0;
    for _ in 0..3_000 {
        let id = random_id(&mut rng);
        let insured = region(one_of(&mut rng, &INSURED));
        let Some(who) = person(&id, insured, date("2026-06-15")) else {
            continue;
        };
        let mut acc = Accumulators::default();
        for _ in 0..rng.between(1, 12) {
            let v = random_visit(&mut rng);
            let s = match p.settle(&who, &v, &acc) {
                Ok(s) => s,
                Err(SettleError::NotRegistered) => {
                    assert!(!who.has_chronic_registration());
                    continue;
                }
                Err(e) => panic!("{e}"),
            };
            let split = &s.split;
            assert_balanced(split);
            let funds = [
                split.hifp_pay,
                split.hifob_pay,
                split.hifmi_pay,
                split.cvlserv_pay,
            ];
            assert!(funds.iter().all(|f| *f >= Money::ZERO));
            assert!(
                Money::sum(funds).is_some_and(|f| f <= split.inscp_scp_amt),
                "{split:?}"
            );
            assert!(split.act_pay_dedc <= split.inscp_scp_amt);
            assert!(split.balc >= Money::ZERO && split.acct_pay >= Money::ZERO);
            if who.scheme == Scheme::Resident || !v.use_account {
                assert_eq!(split.acct_pay, Money::ZERO);
            }
            // Caps: the basic fund never passes the highest cap of the benefit.
            let local = p
                .local(who.insured)
                .unwrap_or_else(|| panic!("insured region"));
            let scheme = if who.scheme == Scheme::Employee {
                &local.employee
            } else {
                &local.resident
            };
            for (care, pool) in [
                (
                    gateway::sandbox::policy::Care::Outpatient,
                    s.after.outpatient,
                ),
                (gateway::sandbox::policy::Care::Chronic, s.after.chronic),
                (gateway::sandbox::policy::Care::Inpatient, s.after.inpatient),
            ] {
                let benefit = scheme.benefit(care);
                let mut highest = benefit.cap.values().into_iter().max().unwrap_or_default();
                for variant in &benefit.variants {
                    if let Some(cap) = variant.cap {
                        highest = highest.max(cap.values().into_iter().max().unwrap_or_default());
                    }
                }
                highest = highest.max(benefit.cap_major.unwrap_or_default());
                assert!(
                    pool.fund_paid <= highest,
                    "{care:?}: {} > {highest}",
                    pool.fund_paid
                );
            }
            if let Some(large) = &scheme.large_amount {
                assert!(s.after.large_amount_paid <= large.cap);
            }
            if let Some(cap) = scheme.critical_illness.as_ref().and_then(|c| c.cap) {
                assert!(s.after.critical_paid <= cap);
            }
            assert!(s.after.account_used <= who.account_balance);
            // A cancel balances too, and takes the contribution back.
            let cancel = split.cancelled();
            let mut info = SetlInfo::default();
            cancel.fill_setlinfo(&mut info);
            info.setl_id = Some("C".into());
            assert!(
                check_setlinfo(&info, Effect::CancelSettlement).is_empty(),
                "{cancel:?}"
            );
            let mut reverted = s.after;
            reverted.revert(&s.delta);
            assert_eq!(reverted, acc.for_year(s.delta.year));
            // Pre-settlement and settlement agree: the engine is pure.
            assert_eq!(p.settle(&who, &v, &acc).ok().as_ref(), Some(&s));
            acc = s.after;
            settled += 1;
        }
    }
    assert!(settled > 5_000, "only {settled} settlements");
}
