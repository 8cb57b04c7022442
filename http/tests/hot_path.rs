//! The hot path of `GET /v1/user` and `GET /v1/session` (answered in front of the router from
//! the snapshot a resident SessionActor published) against the router's answer to the same
//! request: same status, body and headers, same metrics, the same refusals. Its own test binary,
//! with one test, so the process-wide metrics recorder counts only these requests.

#[allow(unused_macros)] // on_both! runs scenarios in parallel; this binary counts metrics
mod common;

use axum::http::StatusCode;
use common::{Backend, Deployment, Resp, TestApp, sign_in, unique};

/// `reauth_http_requests_total` for one route and status, from the app's `/metrics`.
async fn requests(app: &TestApp, route: &str, status: u16) -> u64 {
    let text = app.ops_get("/metrics").await.body;
    let want = [
        "reauth_http_requests_total{".to_string(),
        format!("route=\"{route}\""),
        "method=\"GET\"".to_string(),
        format!("status=\"{status}\""),
    ];
    text.lines()
        .find(|l| want.iter().all(|w| l.contains(w.as_str())))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn same_answer(hot: &Resp, routed: &Resp, what: &str) {
    assert_eq!(hot.status, routed.status, "{what}: status");
    assert_eq!(hot.body, routed.body, "{what}: body");
    for h in [
        "content-type",
        "x-content-type-options",
        "strict-transport-security",
        "vary",
    ] {
        assert_eq!(hot.headers.get(h), routed.headers.get(h), "{what}: {h}");
    }
    let (a, b) = (
        &hot.headers["x-request-id"],
        &routed.headers["x-request-id"],
    );
    assert!(
        a.to_str().unwrap().starts_with("req_"),
        "{what}: request id"
    );
    assert_ne!(a, b, "{what}: request ids are per request");
}

async fn scenario(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let one = dep.spawn().await;
    let two = dep.spawn().await;
    let p = dep.project(&one, false).await;
    two.wait_for_project(&p).await;
    let token = sign_in(&one, &dep, &p, &format!("{}@example.com", unique("hot"))).await;
    let bearer = [("authorization", format!("Bearer {token}"))];

    for path in ["/v1/user", "/v1/session"] {
        // On instance two nothing is resident: the first answer comes through the router
        // (Redis/SQL, activation); the next ones from the published snapshot.
        let before = requests(&two, path, 200).await;
        let cold = two.get(&p.host, path, &bearer).await;
        assert_eq!(cold.status, StatusCode::OK, "{}", cold.body);
        let hot = two.get(&p.host, path, &bearer).await;
        same_answer(&hot, &cold, path);
        // A request carrying an Origin always takes the router (CORS lives there).
        let mut with_origin = bearer.to_vec();
        with_origin.push(("origin", p.origin.clone()));
        let routed = two.get(&p.host, path, &with_origin).await;
        assert_eq!(routed.body, hot.body, "{path}: body with an Origin");
        assert_eq!(
            routed.headers["access-control-allow-origin"],
            p.origin.as_str()
        );
        assert!(!hot.headers.contains_key("access-control-allow-origin"));
        for _ in 0..5 {
            assert_eq!(two.get(&p.host, path, &bearer).await.body, hot.body);
        }
        // cold + hot + with origin + 5 more, each counted once, hot or routed.
        assert_eq!(
            requests(&two, path, 200).await - before,
            8,
            "{path} counted"
        );
    }
    let view = two.user(&p.host, &token).await.json();
    assert_eq!(
        view["session"]["id"],
        one.user(&p.host, &token).await.json()["session"]["id"]
    );

    // Refusals on the hot path look like the router's: another project's host, a token of the
    // wrong shape, no token, an unknown host.
    let other = dep.project(&one, false).await;
    two.wait_for_project(&other).await;
    let before = requests(&two, "/v1/user", 401).await;
    let foreign = two.user(&other.host, &token).await;
    assert_eq!(foreign.status, StatusCode::UNAUTHORIZED);
    assert_eq!(foreign.json()["error"]["code"], "unauthenticated");
    let junk = two.user(&p.host, "not-a-token").await;
    same_answer(&foreign, &junk, "refusals");
    let none = two.get(&p.host, "/v1/user", &[]).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.body, foreign.body);
    let routed = two
        .get(
            &other.host,
            "/v1/user",
            &[bearer[0].clone(), ("origin", other.origin.clone())],
        )
        .await;
    assert_eq!(
        (routed.status, &routed.body),
        (foreign.status, &foreign.body)
    );
    assert_eq!(requests(&two, "/v1/user", 401).await - before, 4);
    let unknown = two.user("nobody.test.local", &token).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["error"]["code"], "project_not_found");
    // Other methods still reach the router's 405.
    let post = two.post(&p.host, "/v1/user", &bearer).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);

    // Logout on instance one (PostgreSQL + Redis: the bus reaches instance two; the embedded
    // backends are one instance, so there the logout is on two itself): the hot path of
    // instance two refuses the token.
    let at = if backend == Backend::Real { &one } else { &two };
    let r = at.post(&p.host, "/v1/logout", &bearer).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    common::eventually(
        "logout seen by instance two",
        std::time::Duration::from_secs(10),
        || {
            !two.handle
                .state
                .core
                .sessions
                .published(&p.id, &token, reauth_runtime::now_ms())
                .is_live()
        },
    )
    .await;
    assert_eq!(
        two.user(&p.host, &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    one.shutdown().await;
    two.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_path_answers_exactly_like_the_router() {
    scenario(Backend::Real).await;
    scenario(Backend::Embedded).await;
}
