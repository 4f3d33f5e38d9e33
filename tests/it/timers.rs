//! Shared timers and who is watching: names, presence that survives blips, rounds, scale.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use choiceboard::http::limits::Limits;

use crate::helpers::{CLOSED_TAB_GONE_WITHIN, SseClient, TestApp, get_text, id_of};

fn cookie(viewer: &str, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("cb_viewer={viewer}; cb_name={name}"),
        None => format!("cb_viewer={viewer}"),
    }
}

/// Waits for a 1 s timer's stream to say it rang.
async fn rings(sse: &mut SseClient) {
    sse.until(
        "status",
        "data-status=\"timed_out\"",
        Duration::from_secs(3),
    )
    .await
    .expect("it rings");
}

/// A presence frame goes out at most once a second per choice, so a join or a rename shows
/// within that second plus delivery (margin for a busy 2-core machine).
const PRESENCE_WITHIN: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn two_named_viewers_see_each_other_live_and_in_the_json() {
    let app = TestApp::spawn().await;
    let id = app.create_timer("Focus", 1500).await;
    let url = app.events_url(&id);
    let ana = cookie("viewer-ana-0123456789", Some("Ana"));
    let mut a = SseClient::connect_with(&app.client, &url, &[("cookie", &ana)]).await;
    a.until("viewers", "Ana", Duration::from_secs(2))
        .await
        .expect("Ana sees herself");
    let bo = cookie("viewer-bo-01234567890", Some("Bo%20%3Cb%3E"));
    let mut b = SseClient::connect_with(&app.client, &url, &[("cookie", &bo)]).await;
    // Presence frames are coalesced to one a second per choice (Ana's own join just had
    // one): Bo shows when that second is over, plus delivery.
    let seen = a
        .until("viewers", "data-count=\"2\"", PRESENCE_WITHIN)
        .await
        .expect("Ana sees Bo within the presence second");
    assert!(
        seen.data.contains("Ana") && seen.data.contains("Bo &lt;b&gt;"),
        "names are escaped: {}",
        seen.data
    );
    b.until("viewers", "Ana", Duration::from_secs(1))
        .await
        .expect("Bo sees Ana");
    let c = app.choice(&id).await;
    assert_eq!(c["viewers"], 2);
    assert_eq!(c["watchers"], json!([{"name": "Ana"}, {"name": "Bo <b>"}]));
    // Renaming shows at once to everyone watching.
    let r = app
        .post_with(
            "/name",
            &[
                ("cookie", &ana),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            format!("name=Ana%20M&back=/choice/{id}"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("cb_name=Ana+M")
    );
    b.until("viewers", "Ana M", PRESENCE_WITHIN)
        .await
        .expect("the new name within the presence second");
    let long = "x".repeat(41);
    let r = app.post_form("/name", &[("name", &long)]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_pause_by_one_is_seen_by_the_other_within_a_second_with_the_same_frozen_value() {
    let app = TestApp::spawn().await;
    let id = app.create_timer("Focus", 1500).await;
    let url = app.events_url(&id);
    let mut a = SseClient::connect(&app.client, &url, None).await;
    let mut b = SseClient::connect(&app.client, &url, None).await;
    for sse in [&mut a, &mut b] {
        sse.until("viewers", "", Duration::from_secs(2))
            .await
            .unwrap();
    }
    let paused = Instant::now();
    let (_, c) = app.command(&id, "pause", json!({})).await;
    let frozen = format!(
        "data-remaining=\"{:.3}\"",
        c["remaining_seconds"].as_f64().unwrap()
    );
    for sse in [&mut a, &mut b] {
        sse.until("status", "data-status=\"paused\"", Duration::from_secs(1))
            .await
            .expect("paused within 1 s");
        sse.until("remaining", &frozen, Duration::from_secs(1))
            .await
            .expect("the same frozen value");
    }
    assert!(paused.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_rung_timer_reset_starts_round_two() {
    let app = TestApp::spawn().await;
    let id = app.create_timer("Sprint", 1).await;
    let mut sse = SseClient::connect(&app.client, &app.events_url(&id), None).await;
    rings(&mut sse).await;
    let (status, c) = app.command(&id, "reset", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (c["status"].as_str(), c["round"].as_u64()),
        (Some("pending"), Some(2))
    );
    assert!(c["result"].is_null());
    sse.until("status", "data-round=\"2\"", Duration::from_secs(1))
        .await
        .expect("round 2 on the same stream");
    let kinds = app.event_types().await;
    assert_eq!(kinds, ["created", "timed_out", "reset"]);
    let single = id_of(&app.create_yes_no(1.0).await);
    app.get_json(&format!("/api/choices/{single}/wait?timeout=3"))
        .await;
    let (status, _) = app.command(&single, "reset", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "only timers have rounds");
}

/// A timer's stream stays open only while the timer may still go on: a rung timer waits for
/// its next round, a cancelled one is over. The page agrees: it opens a stream only when one
/// stays open.
#[tokio::test]
async fn a_cancelled_timer_stream_gets_close_and_ends_and_a_rung_timer_stream_stays_open() {
    let app = TestApp::spawn().await;
    let timer =
        |seconds: u64| json!({"title": "Sprint", "mode": "timer", "timeout_seconds": seconds});
    let events = |id: &str| app.events_url(id);
    let stream_on_page = async |id: &str| {
        get_text(&app.client, &app.url(&format!("/choice/{id}")))
            .await
            .contains("id=\"stream\"")
    };

    let cancelled = id_of(&app.create(timer(600)).await);
    let mut sse = SseClient::connect(&app.client, &events(&cancelled), None).await;
    sse.until("viewers", "", Duration::from_secs(2))
        .await
        .expect("connected");
    let (status, _) = app.command(&cancelled, "cancel", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    sse.until("close", "", Duration::from_secs(2))
        .await
        .expect("a cancelled timer's stream gets close");
    let waited = Instant::now();
    assert!(sse.next(Duration::from_secs(5)).await.is_none());
    assert!(
        waited.elapsed() < Duration::from_secs(4),
        "the server ended the stream after close"
    );
    assert!(
        !stream_on_page(&cancelled).await,
        "its page opens no stream"
    );

    let rung = id_of(&app.create(timer(1)).await);
    let mut sse = SseClient::connect(&app.client, &events(&rung), None).await;
    rings(&mut sse).await;
    // Whatever comes in the next 1.5 s, no close, and the stream does not end.
    let window = Instant::now() + Duration::from_millis(1500);
    let mut after = Vec::new();
    while let Some(m) = sse
        .next(window.saturating_duration_since(Instant::now()))
        .await
    {
        after.push(m.event);
    }
    assert!(!after.iter().any(|e| e == "close"), "no close: {after:?}");
    assert!(
        Instant::now() + Duration::from_millis(100) >= window,
        "the stream is still open after ringing"
    );
    assert!(stream_on_page(&rung).await, "its page keeps its stream");
    let (status, _) = app.command(&rung, "reset", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    sse.until("status", "data-round=\"2\"", Duration::from_secs(1))
        .await
        .expect("round 2 on the stream that stayed open");
}

#[tokio::test]
async fn a_viewer_whose_stream_blips_is_not_shown_leaving() {
    let app = TestApp::spawn().await;
    let id = app.create_timer("Focus", 1500).await;
    let url = app.events_url(&id);
    let mut observer = SseClient::connect_with(
        &app.client,
        &url,
        &[("cookie", &cookie("observer-0123456789", Some("Obs")))],
    )
    .await;
    let ana = cookie("viewer-ana-0123456789", Some("Ana"));
    let blipper = SseClient::connect_with(&app.client, &url, &[("cookie", &ana)]).await;
    observer
        .until("viewers", "data-count=\"2\"", Duration::from_secs(2))
        .await
        .unwrap();
    drop(blipper);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _back = SseClient::connect_with(&app.client, &url, &[("cookie", &ana)]).await;
    let mut counts = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Some(m) = observer
        .next(until.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        if m.event == "viewers" {
            counts.push(m.data);
        }
    }
    assert!(
        counts.iter().all(|v| v.contains("data-count=\"2\"")),
        "no leave and return shown: {counts:?}"
    );
    assert_eq!(app.choice(&id).await["viewers"], 2);
    // Someone who really leaves is gone once the grace period has passed.
    let short = TestApp::spawn_with(|c| c.presence_grace = Duration::from_millis(300)).await;
    let t = id_of(&short.create(json!({"title": "T", "mode": "timer"})).await);
    let leaver = SseClient::connect_with(
        &short.client,
        &short.url(&format!("/choice/{t}/events")),
        &[("cookie", &ana)],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(short.choice(&t).await["viewers"], 1);
    drop(leaver);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(short.choice(&t).await["viewers"], 0);
}

/// Waits for the observer's viewers frame that counts `count`; how long it took.
async fn until_count(observer: &mut SseClient, count: usize, within: Duration) -> Duration {
    let started = Instant::now();
    observer
        .until("viewers", &format!("data-count=\"{count}\""), within)
        .await
        .unwrap_or_else(|| panic!("{count} watching within {within:?}"));
    started.elapsed()
}

#[tokio::test]
async fn a_closed_tab_stops_counting_within_a_second_of_its_beacon_and_a_dropped_stream_keeps_its_grace()
 {
    let app = TestApp::spawn().await;
    for paused in [false, true] {
        let id = app.create_timer("Focus", 1500).await;
        if paused {
            // Nothing is written to a paused choice's streams for a while: the server still
            // notices one that closed.
            app.command(&id, "pause", json!({})).await;
        }
        let url = app.events_url(&id);
        let beacon = format!("/choice/{id}/events/leave");
        let connect = |name: &str| {
            let cookie = cookie(&format!("viewer-{name}-0123456789"), Some(name));
            let url = url.clone();
            let client = app.client.clone();
            async move {
                let sse = SseClient::connect_with(&client, &url, &[("cookie", &cookie)]).await;
                (sse, cookie)
            }
        };
        let (mut observer, _) = connect("obs").await;
        let (first, first_cookie) = connect("ana").await;
        let (second, second_cookie) = connect("bo").await;
        let (third, _) = connect("cy").await;
        until_count(&mut observer, 4, Duration::from_secs(2)).await;
        // The page's beacon comes before its stream ends, or after: either way the tab is gone.
        let r = app
            .post_with(&beacon, &[("cookie", &first_cookie)], "")
            .await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        drop(first);
        drop(second);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = app
            .post_with(&beacon, &[("cookie", &second_cookie)], "")
            .await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        // A stream that drops without a beacon is a blip or a reload: it keeps its place.
        drop(third);
        let started = Instant::now();
        while app.choice(&id).await["viewers"] != 2 {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "gone from the JSON within 1 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let counted = started.elapsed();
        let took = started.elapsed() + until_count(&mut observer, 2, CLOSED_TAB_GONE_WITHIN).await;
        println!(
            "paused: {paused}: two closed tabs stopped counting in {counted:?}, shown in {took:?}"
        );
        assert!(took <= CLOSED_TAB_GONE_WITHIN, "{took:?}");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let c = app.choice(&id).await;
        assert_eq!(c["viewers"], 2);
        assert_eq!(c["watchers"], json!([{"name": "cy"}, {"name": "obs"}]));
    }
    // A beacon names a choice; without a viewer cookie it changes nothing.
    let r = app.post_with("/choice/nope/events/leave", &[], "").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let id = id_of(&app.create_yes_no(60.0).await);
    let r = app
        .post_with(&format!("/choice/{id}/events/leave"), &[], "")
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn twenty_viewers_on_each_of_a_hundred_timers_all_tick() {
    let _turn = crate::helpers::heavy_and_timed().await;
    // 2,000 streams from one address: more than one client may open by default.
    let app = TestApp::spawn_with(|c| c.limits = Limits::unlimited()).await;
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(id_of(
            &app.create(
                json!({"title": format!("timer {i}"), "mode": "timer", "timeout_seconds": 600}),
            )
            .await,
        ));
    }
    let mut viewers = Vec::new();
    for id in &ids {
        for _ in 0..20 {
            let url = app.events_url(id);
            viewers.push(SseClient::connect(&app.client, &url, None).await);
        }
    }
    let started = Instant::now();
    let counts = futures_util::future::join_all(viewers.into_iter().map(|mut sse| async move {
        let mut ticks = 0;
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Some(m) = sse
            .next(until.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            if m.event == "remaining" {
                ticks += 1;
            }
        }
        ticks
    }))
    .await;
    let fewest = counts.iter().min().copied().unwrap_or(0);
    println!(
        "2000 viewers on 100 timers for {:?}: fewest ticks {fewest}, total {}",
        started.elapsed(),
        counts.iter().sum::<usize>()
    );
    assert!(
        fewest >= 4,
        "every viewer got at least 4 ticks of its own timer in 5 s (fewest: {fewest})"
    );
}

#[tokio::test]
async fn the_dashboard_form_creates_a_timer_running_or_paused() {
    let app = TestApp::spawn().await;
    let r = app
        .post_form(
            "/timers",
            &[("title", "Standup"), ("minutes", "15"), ("start", "paused")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let id = location.trim_start_matches("/choice/");
    let c = app.choice(id).await;
    assert_eq!(
        (
            c["mode"].as_str(),
            c["status"].as_str(),
            c["timeout_seconds"].as_i64()
        ),
        (Some("timer"), Some("paused"), Some(900))
    );
    let page = get_text(&app.client, &app.url(&location)).await;
    assert!(
        page.contains("<svg") && page.contains(&format!("/choice/{id}")),
        "a QR code and the link"
    );
    let r = app
        .post_form("/timers", &[("title", "x"), ("minutes", "-3")])
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .post_form("/timers", &[("title", "x"), ("minutes", "soon")])
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn presence_stays_small_and_coalesced_however_many_watch() {
    let app = TestApp::spawn_with(|c| c.limits = Limits::unlimited()).await;
    let id = app.create_timer("Crowd", 600).await;
    let url = app.events_url(&id);
    let mut observer = SseClient::connect(&app.client, &url, None).await;
    let started = Instant::now();
    let mut crowd = Vec::new();
    for i in 0..10 {
        let named = cookie(
            &format!("viewer-{i:02}-0123456789"),
            Some(&format!("N{i:02}")),
        );
        crowd.push(SseClient::connect_with(&app.client, &url, &[("cookie", &named)]).await);
    }
    for _ in 0..140 {
        crowd.push(SseClient::connect(&app.client, &url, None).await);
    }
    let joined_in = started.elapsed();
    // 151 streams, 151 people: 10 named, 141 guests (the observer included).
    let c = app.choice(&id).await;
    assert_eq!(c["viewers"], 151);
    let watchers = c["watchers"].as_array().unwrap();
    assert_eq!(watchers.len(), 100, "JSON lists at most 100 names");
    assert_eq!(watchers[0], json!({"name": "N00"}));
    assert_eq!(watchers[9], json!({"name": "N09"}));
    assert_eq!(watchers[10], json!({"name": "guest"}));
    // The observer's frames: the last says 151, with 8 names and the rest counted.
    let mut frames = Vec::new();
    let until = Instant::now() + PRESENCE_WITHIN;
    while let Some(m) = observer
        .next(until.saturating_duration_since(Instant::now()))
        .await
    {
        if m.event == "viewers" {
            let done = m.data.contains("data-count=\"151\"");
            frames.push(m.data);
            if done {
                break;
            }
        }
    }
    let last = frames.last().expect("viewers frames");
    assert!(
        last.contains("data-count=\"151\""),
        "the whole crowd within the presence second: {last}"
    );
    assert!(last.contains("N07") && !last.contains("N08"), "{last}");
    assert!(last.contains("and 143 more"), "{last}");
    assert!(
        !last.contains("guest"),
        "guests are counted, not listed: {last}"
    );
    assert!(last.len() < 600, "{} bytes: {last}", last.len());
    // Coalesced: 151 joins made at most one frame a second, the first one at connect.
    let allowed = 1 + started.elapsed().as_secs_f64().ceil() as usize;
    assert!(
        frames.len() <= allowed,
        "{} viewers frames in {:?}",
        frames.len(),
        started.elapsed()
    );
    let quiet_until = Instant::now() + Duration::from_millis(1200);
    while let Some(m) = observer
        .next(quiet_until.saturating_duration_since(Instant::now()))
        .await
    {
        assert_ne!(
            m.event, "viewers",
            "nothing more once the crowd has settled"
        );
    }
    println!("151 joins over {joined_in:?}");
}
