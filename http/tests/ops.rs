//! The operator console and the metrics that answer "which tenant?": `/ops` and
//! `/ops/supervision` show a failing project as failing (and why) while its siblings serve;
//! one project that keeps failing is parked instead of taking the tree down; per-project series
//! are bounded; every series the shipped dashboard and alert rules query is exported.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::stripe::new_subscription_event;
use common::{Backend, Deployment, TestApp, TestProject, unique, webhook_secret};
use serde_json::Value;

async fn ops_post(app: &TestApp, path: &str) -> (StatusCode, String) {
    let addr = app.handle.ops_addr.expect("ops listener");
    let r = app
        .http
        .post(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("ops request");
    let status = StatusCode::from_u16(r.status().as_u16()).expect("status");
    (status, r.text().await.unwrap_or_default())
}

async fn supervision(app: &TestApp) -> Value {
    let r = app.ops_get("/ops/supervision").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

fn row<'a>(view: &'a Value, p: &TestProject) -> &'a Value {
    view["projects"]
        .as_array()
        .and_then(|ps| ps.iter().find(|r| r["slug"] == p.slug.as_str()))
        .unwrap_or_else(|| panic!("{} not in {view}", p.slug))
}

/// Poll the console's JSON until `cond` holds for the project's row.
async fn until_row(app: &TestApp, p: &TestProject, what: &str, cond: impl Fn(&Value) -> bool) {
    let start = Instant::now();
    loop {
        let view = supervision(app).await;
        if cond(row(&view, p)) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}: {}",
            row(&view, p)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of one exported sample (`name{labels}`), if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

on_both!(the_console_shows_which_tenant_is_failing_and_why);
async fn the_console_shows_which_tenant_is_failing_and_why(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let mut s = dep.settings();
    s.ops_drills = true;
    let app = dep.spawn_with(s).await;
    let healthy = dep.billing_project(&app).await;
    let broken = dep.project(&app, false).await;

    // Traffic on the healthy one: a sign-in, reads, a webhook.
    let email = format!("{}@example.com", unique("ops"));
    let token = common::sign_in(&app, &dep, &healthy, &email).await;
    for _ in 0..3 {
        assert_eq!(app.user(&healthy.host, &token).await.status, StatusCode::OK);
    }
    let user_id = app.user(&healthy.host, &token).await.json()["user_id"]
        .as_str()
        .expect("user id")
        .to_string();
    let created = reauth_runtime::now_ms() / 1000 - 3;
    let payload = new_subscription_event(created, Some(&user_id));
    let r = app
        .webhook(
            &healthy.id,
            &payload,
            &webhook_secret(&healthy),
            created + 3,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // The drill: the broken project's actor fails and cannot start again for a minute.
    let (status, body) = ops_post(
        &app,
        &format!("/ops/drills/project-failure?project={}", broken.slug),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    until_row(
        &app,
        &broken,
        "the drilled project to show as failing",
        |r| {
            r["health"] == "failing"
                && r["state"] != "running"
                && r["last_failure"]
                    .as_str()
                    .is_some_and(|w| w.contains("injected failure"))
                && r["restarts"].as_u64().is_some_and(|n| n >= 1)
        },
    )
    .await;

    let mut view = supervision(&app).await;
    // The bus: a channel in process; on Redis, connected once subscribed.
    let start = Instant::now();
    while view["bus"]["connected"] != true {
        assert!(start.elapsed() < Duration::from_secs(10), "bus: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        view = supervision(&app).await;
    }
    let backend_name = if backend == Backend::Real {
        "redis"
    } else {
        "memory"
    };
    assert_eq!(view["bus"]["backend"], backend_name, "{view}");
    assert_eq!(view["process"]["tree_up"], true, "{view}");
    assert_eq!(view["process"]["database"]["up"], true, "{view}");
    let h = row(&view, &healthy);
    assert_eq!(h["health"], "ok", "{h}");
    assert_eq!(h["state"], "running", "{h}");
    assert!(h["requests_total"].as_u64().is_some_and(|n| n >= 5), "{h}");
    assert_eq!(h["sessions_resident"], 1, "{h}");
    assert_eq!(h["webhooks_total"], 1, "{h}");
    assert!(
        h["webhook_lag_mean_secs"]
            .as_f64()
            .is_some_and(|l| (2.0..120.0).contains(&l)),
        "event created 3 s ago: {h}"
    );
    // Failing first by default.
    assert_eq!(view["projects"][0]["slug"], broken.slug.as_str(), "{view}");

    // Rates: measured between two looks at least a second apart, with traffic between them.
    for _ in 0..4 {
        app.user(&healthy.host, &token).await;
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let later = supervision(&app).await;
    assert!(
        later["window_secs"].as_f64().is_some_and(|w| w >= 1.0),
        "{later}"
    );
    let h = row(&later, &healthy);
    assert!(
        h["requests_per_sec"].as_f64().is_some_and(|r| r > 0.0),
        "{h}"
    );
    assert_eq!(h["error_rate"].as_f64(), Some(0.0), "{h}");

    // The page says the same, without JavaScript: a row per project with its health.
    let page = app.ops_get(&format!("/ops?q={}", broken.slug)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains(&format!(
            "data-project=\"{}\" data-health=\"failing\"",
            broken.slug
        )),
        "{}",
        page.body
    );
    assert!(page.body.contains("injected failure (drill)"));
    assert!(page.body.contains("http-equiv=\"refresh\""));
    // The filter left the healthy project out.
    assert!(
        !page
            .body
            .contains(&format!("data-project=\"{}\"", healthy.slug))
    );
    let page = app.ops_get("/ops?sort=slug").await;
    assert!(page.body.contains(&format!(
        "data-project=\"{}\" data-health=\"ok\"",
        healthy.slug
    )));

    // The healthy tenant keeps signing people in meanwhile.
    common::sign_in(
        &app,
        &dep,
        &healthy,
        &format!("{}@example.com", unique("ops2")),
    )
    .await;

    // Metrics name the tenant.
    let m = app.ops_get("/metrics").await.body;
    let up = |p: &TestProject| sample(&m, &format!("reauth_project_up{{project=\"{}\"}}", p.slug));
    assert_eq!(up(&broken), Some(0.0), "{m}");
    assert_eq!(up(&healthy), Some(1.0));
    let hs = &healthy.slug;
    assert_eq!(
        sample(
            &m,
            &format!(
                "reauth_signins_total{{project=\"{hs}\",method=\"email\",outcome=\"success\"}}"
            )
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &m,
            &format!("reauth_magic_links_total{{project=\"{hs}\",outcome=\"sent\"}}")
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &m,
            &format!("reauth_webhook_events_total{{project=\"{hs}\",outcome=\"applied\"}}")
        ),
        Some(1.0)
    );
    assert!(
        sample(
            &m,
            &format!("reauth_project_requests_total{{project=\"{hs}\",class=\"2xx\"}}")
        )
        .is_some_and(|n| n >= 4.0),
        "{m}"
    );
    assert!(
        sample(
            &m,
            &format!(
                "reauth_project_restarts_total{{project=\"{}\"}}",
                broken.slug
            )
        )
        .is_some_and(|n| n >= 1.0)
    );
    assert_eq!(sample(&m, "reauth_tenants_up"), Some(1.0));
    assert_eq!(sample(&m, "reauth_database_up"), Some(1.0));
    assert!(m.contains("reauth_build_info{version=\""));
    assert!(!m.contains(&user_id), "no user id in the metrics");

    // Ending the drill lets the project start again at its next attempt.
    let (status, _) = ops_post(
        &app,
        &format!("/ops/drills/project-failure?project={}&secs=0", broken.slug),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_project_that_keeps_failing_is_parked_and_the_tree_stays_up() {
    let dep = Deployment::new(Backend::Embedded).await;
    let mut s = dep.settings();
    s.ops_drills = true;
    let app = dep.spawn_with(s).await;
    let broken = dep.project(&app, false).await;
    let fine = dep.project(&app, false).await;
    let (status, body) = ops_post(
        &app,
        &format!(
            "/ops/drills/project-failure?project={}&secs=600",
            broken.slug
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // More than five failures within a minute: parked (retried every 30 s), not escalated.
    until_row(&app, &broken, "the project to be parked", |r| {
        r["state"] == "parked"
    })
    .await;
    let tenants = app.handle.state.core.tenants.clone();
    assert!(tenants.is_up());
    let m = app.ops_get("/metrics").await.body;
    assert_eq!(
        sample(&m, "reauth_actor_escalations_total{kind=\"tenants\"}"),
        Some(0.0),
        "{m}"
    );
    // Its sibling still signs people in.
    common::sign_in(&app, &dep, &fine, &format!("{}@example.com", unique("f"))).await;
    let view = supervision(&app).await;
    assert_eq!(row(&view, &fine)["state"], "running");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drills_are_off_by_default_and_the_console_is_not_on_tenant_hosts() {
    let dep = Deployment::new(Backend::Embedded).await;
    let app = dep.spawn().await;
    let p = dep.project(&app, false).await;
    let (status, body) = ops_post(
        &app,
        &format!("/ops/drills/project-failure?project={}", p.slug),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("REAUTH_OPS_DRILLS"), "{body}");
    let view = supervision(&app).await;
    assert_eq!(row(&view, &p)["state"], "running", "nothing was failed");
    for path in ["/ops", "/ops/supervision", "/ops/drills/project-failure"] {
        let r = app.get(&p.host, path, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path} on a tenant host");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_page_cannot_drill_through_the_operators_browser() {
    let dep = Deployment::new(Backend::Embedded).await;
    let mut s = dep.settings();
    s.ops_drills = true;
    let app = dep.spawn_with(s).await;
    let p = dep.project(&app, false).await;
    let addr = app.handle.ops_addr.expect("ops listener");
    let url = format!(
        "http://{addr}/ops/drills/project-failure?project={}",
        p.slug
    );
    // What a browser sends for a form or fetch() POST from https://evil.example.
    for headers in [
        vec![
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        vec![("origin", "https://evil.example")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("origin", "null")],
    ] {
        let mut rb = app.http.post(&url);
        for (k, v) in &headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.expect("post");
        assert_eq!(r.status().as_u16(), 403, "{headers:?}");
    }
    let view = supervision(&app).await;
    assert_eq!(row(&view, &p)["state"], "running", "nothing was failed");
    // The operator's own tools (no Origin) and the console's own origin are accepted.
    let r = app
        .http
        .post(&url)
        .header("origin", format!("http://{addr}"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 202);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_project_series_are_bounded_by_traffic() {
    let dep = Deployment::new(Backend::Embedded).await;
    let mut s = dep.settings();
    s.metrics_projects = 1;
    let app = dep.spawn_with(s).await;
    let busy = dep.project(&app, false).await;
    let quiet = dep.project(&app, false).await;
    let quieter = dep.project(&app, false).await;
    for _ in 0..5 {
        app.get(&busy.host, "/login", &[]).await;
    }
    app.get(&quiet.host, "/login", &[]).await;
    app.get(&quieter.host, "/login", &[]).await;
    let m = app.ops_get("/metrics").await.body;
    assert_eq!(
        sample(
            &m,
            &format!(
                "reauth_project_requests_total{{project=\"{}\",class=\"2xx\"}}",
                busy.slug
            )
        ),
        Some(5.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "reauth_project_requests_total{project=\"_other\",class=\"2xx\"}"
        ),
        Some(2.0),
        "{m}"
    );
    assert!(!m.contains(&format!("project=\"{}\"", quiet.slug)));
    assert!(!m.contains(&format!("project=\"{}\"", quieter.slug)));
    app.shutdown().await;
}

/// Metric names a PromQL expression or Grafana target mentions.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let starts = (rest.starts_with("reauth_") || rest.starts_with("process_"))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if starts {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.insert(rest[..len].to_string());
            i += len;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// The families a scrape exports (histogram parts folded into their family).
fn exported(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .flat_map(|n| {
            let mut v = vec![n.to_string()];
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = n.strip_suffix(suffix) {
                    v.push(base.to_string());
                }
            }
            v
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_the_dashboard_and_the_alert_rules_query_is_exported() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut wanted = BTreeSet::new();
    let rules = std::fs::read_to_string(repo.join("deploy/prometheus/alerts.yml"))
        .expect("deploy/prometheus/alerts.yml");
    wanted.extend(names_in(&rules));
    let dashboards = repo.join("deploy/grafana/dashboards");
    for entry in std::fs::read_dir(&dashboards).expect("deploy/grafana/dashboards") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("dashboard");
            let _: Value = serde_json::from_str(&text).expect("dashboard is JSON");
            wanted.extend(names_in(&text));
        }
    }
    assert!(wanted.len() > 20, "the files were read: {wanted:?}");

    // A deployment on PostgreSQL + Redis after a journey: sign-in, reads, a webhook.
    let dep = Deployment::new(Backend::Real).await;
    let app = dep.spawn().await;
    let p = dep.billing_project(&app).await;
    let token = common::sign_in(&app, &dep, &p, &format!("{}@example.com", unique("m"))).await;
    assert_eq!(app.user(&p.host, &token).await.status, StatusCode::OK);
    let created = reauth_runtime::now_ms() / 1000;
    let payload = new_subscription_event(created, None);
    let r = app
        .webhook(&p.id, &payload, &webhook_secret(&p), created)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let m = app.ops_get("/metrics").await.body;
    let have = exported(&m);
    let missing: Vec<&String> = wanted.iter().filter(|n| !have.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "queried by deploy/ but not exported: {missing:?}"
    );
    app.shutdown().await;
}
