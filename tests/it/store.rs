//! Every statement of the store runs and its columns decode on this run's backend (the Any
//! driver maps SQLite INTEGER and PostgreSQL BIGINT, `COUNT(*)` and `COALESCE(MAX(..), 0)`
//! alike to i64; this checks it rather than trusting it).

use choiceboard::store::{ListFilter, Store};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, id_of};

#[tokio::test]
async fn every_store_statement_runs_and_decodes_on_this_backend() {
    let app = TestApp::spawn().await;
    let pending = id_of(&app.create_yes_no(600.0).await);
    let paused = id_of(
        &app.create(json!({"title": "t", "mode": "timer", "timeout_seconds": 60, "start_paused": true, "source": "ci"}))
            .await,
    );
    let submitted = id_of(&app.create_yes_no(600.0).await);
    let (status, _) = app
        .command(&submitted, "submit", json!({"selection": ["yes"]}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let store = Store::open(&app.database)
        .await
        .expect("open a second time");
    store.ping().await.expect("ping");
    assert_eq!(store.last_seq().await.expect("last_seq"), 4);
    let one = store.get(&pending).await.expect("get").expect("there");
    assert_eq!((one.id.as_str(), one.version), (pending.as_str(), 1));
    assert!(store.get("nope").await.expect("get").is_none());

    let ids = |choices: Vec<choiceboard::choice::Choice>| -> Vec<String> {
        choices.into_iter().map(|c| c.id).collect()
    };
    let active = ids(store.list(ListFilter::Active, 10).await.expect("active"));
    assert_eq!(active.len(), 2);
    assert!(active.contains(&pending) && active.contains(&paused));
    assert_eq!(
        ids(store.list(ListFilter::Final, 10).await.expect("final")),
        vec![submitted.clone()]
    );
    assert_eq!(store.list(ListFilter::All, 10).await.expect("all").len(), 3);
    assert_eq!(
        store.list(ListFilter::All, 1).await.expect("limit").len(),
        1
    );

    let deadlines = store.pending_deadlines().await.expect("deadlines");
    assert_eq!(deadlines.len(), 1, "only the pending one has a deadline");
    assert_eq!(deadlines[0].0, pending);
    assert!(deadlines[0].1 > choiceboard::clock::now_ms());

    let events = store.events_after(1, 2).await.expect("events");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(events[0].choice_id.as_deref(), Some(paused.as_str()));
    assert_eq!(events[0].kind, "created");
    assert!(events[0].data.is_object());

    let counts = store.resolved_since(0).await.expect("resolved_since");
    assert_eq!(counts, vec![("submitted".to_string(), 1)]);
}
