//! Property tests: random sequences of begin / finish / resolve / attempt on
//! a few keys, checked call by call against a small model of the state
//! machine; and random entries read back exactly as written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::{entry, finish, unique};
use ledger::{Answered, Begin, Finish, Key, Ledger, LedgerError, Money, Reply, State};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

#[derive(Debug, Clone)]
enum Action {
    Begin {
        key: u8,
        other_digest: bool,
    },
    Finish {
        key: u8,
        state: State,
        variant: bool,
    },
    Resolve {
        key: u8,
        state: State,
    },
    Attempt {
        key: u8,
    },
}

fn state() -> impl Strategy<Value = State> {
    prop::sample::select(State::ALL.to_vec())
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..3u8, prop::bool::weighted(0.2))
            .prop_map(|(key, other_digest)| Action::Begin { key, other_digest }),
        3 => (0..3u8, state(), any::<bool>())
            .prop_map(|(key, state, variant)| Action::Finish { key, state, variant }),
        3 => (0..3u8, state()).prop_map(|(key, state)| Action::Resolve { key, state }),
        1 => (0..3u8).prop_map(|key| Action::Attempt { key }),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Fresh,
    InFlight,
    Reused,
    Finished(State),
    Ok,
    Conflict,
    Count(u32),
}

#[derive(Debug, Clone)]
struct Model {
    other_digest: bool,
    state: State,
    finished: Option<(State, bool)>,
    attempts: u32,
}

fn expect(model: &mut HashMap<u8, Model>, action: &Action) -> Seen {
    match *action {
        Action::Begin { key, other_digest } => match model.get(&key) {
            None => {
                model.insert(
                    key,
                    Model {
                        other_digest,
                        state: State::Pending,
                        finished: None,
                        attempts: 0,
                    },
                );
                Seen::Fresh
            }
            Some(m) if m.other_digest != other_digest => Seen::Reused,
            Some(m) if m.state == State::Pending => Seen::InFlight,
            Some(m) => Seen::Finished(m.state),
        },
        Action::Finish {
            key,
            state,
            variant,
        } => {
            let Some(m) = model.get_mut(&key) else {
                return Seen::Conflict;
            };
            if !matches!(state, State::Done | State::Refused | State::Unknown) {
                Seen::Conflict
            } else if m.state == State::Pending {
                m.state = state;
                m.finished = Some((state, variant));
                Seen::Ok
            } else if m.state == state && m.finished == Some((state, variant)) {
                Seen::Ok
            } else {
                Seen::Conflict
            }
        }
        Action::Resolve { key, state } => {
            let Some(m) = model.get_mut(&key) else {
                return Seen::Conflict;
            };
            let allowed = matches!(state, State::Reversed | State::Confirmed)
                && (matches!(m.state, State::Pending | State::Unknown)
                    || (m.state == State::Done && state == State::Reversed)
                    || m.state == state);
            if allowed {
                m.state = state;
                Seen::Ok
            } else {
                Seen::Conflict
            }
        }
        Action::Attempt { key } => match model.get_mut(&key) {
            None => Seen::Conflict,
            Some(m) => {
                m.attempts += 1;
                Seen::Count(m.attempts)
            }
        },
    }
}

fn finish_of(state: State, variant: bool) -> Finish {
    let mut f = finish(state, if variant { 20 } else { 10 });
    if variant {
        f.reply.bytes = b"variant".to_vec();
    }
    f
}

async fn perform(ledger: &Ledger, caller: &str, action: &Action) -> Result<Seen, LedgerError> {
    let key = |k: u8| Key::new(caller, format!("k{k}"));
    let unit = |r: Result<(), LedgerError>| match r {
        Ok(()) => Ok(Seen::Ok),
        Err(LedgerError::Conflict(_)) => Ok(Seen::Conflict),
        Err(e) => Err(e),
    };
    match *action {
        Action::Begin {
            key: k,
            other_digest,
        } => {
            let mut new = entry(caller, &format!("k{k}"), i64::from(k));
            if other_digest {
                new.digest = "ffff".into();
            }
            Ok(match ledger.begin(new).await? {
                Begin::Fresh => Seen::Fresh,
                Begin::InFlight => Seen::InFlight,
                Begin::Reused => Seen::Reused,
                Begin::Finished(entry) => Seen::Finished(entry.state),
            })
        }
        Action::Finish {
            key: k,
            state,
            variant,
        } => unit(ledger.finish(&key(k), finish_of(state, variant)).await),
        Action::Resolve { key: k, state } => unit(ledger.resolve(&key(k), state, 99).await),
        Action::Attempt { key: k } => match ledger.note_attempt(&key(k)).await {
            Ok(count) => Ok(Seen::Count(count)),
            Err(LedgerError::Conflict(_)) => Ok(Seen::Conflict),
            Err(e) => Err(e),
        },
    }
}

fn run_model(url: &str, cases: u32) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ledger = runtime.block_on(Ledger::open(url)).unwrap();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(action(), 1..40), |actions| {
            runtime.block_on(async {
                let caller = unique("P");
                let mut model = HashMap::new();
                for action in &actions {
                    let expected = expect(&mut model, action);
                    let seen = perform(&ledger, &caller, action)
                        .await
                        .map_err(|e| TestCaseError::fail(format!("{action:?}: {e}")))?;
                    prop_assert_eq!(&seen, &expected, "{:?}", action);
                }
                for (k, m) in &model {
                    let stored = ledger
                        .get(&Key::new(caller.as_str(), format!("k{k}")))
                        .await
                        .unwrap()
                        .unwrap();
                    prop_assert_eq!(stored.state, m.state);
                    prop_assert_eq!(stored.attempts, m.attempts);
                    prop_assert_eq!(stored.other_digest_marker(), m.other_digest);
                }
                Ok(())
            })
        })
        .unwrap();
}

trait DigestMarker {
    fn other_digest_marker(&self) -> bool;
}

impl DigestMarker for ledger::Entry {
    fn other_digest_marker(&self) -> bool {
        self.new.digest == "ffff"
    }
}

#[test]
fn sqlite_follows_the_model() {
    let db = common::SqliteDb::new();
    run_model(&db.url, 48);
}

#[test]
fn postgres_follows_the_model() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(schema) = runtime.block_on(common::PgSchema::create()) else {
        return;
    };
    drop(runtime);
    run_model(&schema.url, 32);
}

fn money_strategy() -> impl Strategy<Value = Option<Money>> {
    prop::option::of(
        (-Money::MAX_ABS_FEN..=Money::MAX_ABS_FEN).prop_map(|fen| Money::from_fen(fen).unwrap()),
    )
}

fn text_strategy() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[A-Za-z0-9_.:京津冀医保-]{1,40}")
}

#[test]
fn sqlite_round_trips_random_entries() {
    let db = common::SqliteDb::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ledger = runtime.block_on(Ledger::open(&db.url)).unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        (
            text_strategy(),
            text_strategy(),
            text_strategy(),
            any::<Option<i64>>(),
            any::<i64>(),
            prop::option::of("[A-Za-z0-9京津冀-]{1,30}"),
        ),
        (
            money_strategy(),
            money_strategy(),
            money_strategy(),
            money_strategy(),
        ),
        (
            any::<Option<u16>>(),
            prop::collection::vec("[a-z_]{1,12}", 0..4),
            any::<u16>(),
            prop::collection::vec(any::<u8>(), 0..600),
            any::<i64>(),
        ),
    );
    runner
        .run(&strategy, |(texts, amounts, tail)| {
            runtime.block_on(async {
                let caller = unique("R");
                let mut new = entry(&caller, "m", texts.4);
                new.psn_no = texts.5.map(|text| ledger::PsnNo::new(text).unwrap());
                ledger.begin(new.clone()).await.unwrap();
                let written = Finish {
                    state: State::Done,
                    answered: Answered {
                        setl_id: texts.0,
                        mdtrt_id: texts.1,
                        insutype: None,
                        med_type: texts.2,
                        clr_type: Some("21".into()),
                        setl_time_ms: texts.3,
                        medfee_sumamt: amounts.0,
                        fund_pay_sumamt: amounts.1,
                        acct_pay: amounts.2,
                        psn_cash_pay: amounts.3,
                        error_code: tail.0,
                        anomalies: tail.1,
                    },
                    reply: Reply {
                        status: tail.2,
                        media_type: "application/xml;charset=GBK".into(),
                        bytes: tail.3,
                        finished_at_ms: tail.4,
                    },
                };
                ledger.finish(&new.key, written.clone()).await.unwrap();
                let read = ledger.get(&new.key).await.unwrap().unwrap();
                prop_assert_eq!(read.new.received_at_ms, new.received_at_ms);
                prop_assert_eq!(&read.new.psn_no, &new.psn_no);
                prop_assert_eq!(&read.answered.setl_id, &written.answered.setl_id);
                prop_assert_eq!(&read.answered.mdtrt_id, &written.answered.mdtrt_id);
                prop_assert_eq!(&read.answered.med_type, &written.answered.med_type);
                prop_assert_eq!(read.answered.setl_time_ms, written.answered.setl_time_ms);
                prop_assert_eq!(read.answered.medfee_sumamt, written.answered.medfee_sumamt);
                prop_assert_eq!(
                    read.answered.fund_pay_sumamt,
                    written.answered.fund_pay_sumamt
                );
                prop_assert_eq!(read.answered.acct_pay, written.answered.acct_pay);
                prop_assert_eq!(read.answered.psn_cash_pay, written.answered.psn_cash_pay);
                prop_assert_eq!(read.answered.error_code, written.answered.error_code);
                prop_assert_eq!(&read.answered.anomalies, &written.answered.anomalies);
                prop_assert_eq!(read.reply, Some(written.reply));
                Ok(())
            })
        })
        .unwrap();
}
