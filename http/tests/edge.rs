//! The edge as an attacker and a broken network meet it: hostile `Host` headers (and a
//! property test over arbitrary ones), slow and idle connections, the connection cap, error
//! envelopes for everything the server itself refuses, the ops surface off tenant hosts,
//! spoofed `X-Forwarded-For`, and magic links that a mail scanner cannot burn.

#[macro_use]
mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{Backend, Deployment, TestApp, TestProject, form_csrf, link_token, unique};
use rand::RngExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn setup(backend: Backend) -> (Deployment, TestApp, TestProject) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let p = dep.project(&app, false).await;
    (dep, app, p)
}

/// One raw HTTP/1.1 request (whatever bytes the `Host` holds); the status and the whole answer.
async fn raw(app: &TestApp, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(app.addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn login_email_request(host: &[u8], email: &str) -> Vec<u8> {
    let body = format!("email={}", email.replace('@', "%40"));
    let mut r = b"POST /login/email HTTP/1.1\r\nHost: ".to_vec();
    r.extend_from_slice(host);
    r.extend_from_slice(
        format!(
            "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    r
}

/// Every link in every email sent so far must be exactly the canonical origin, `/verify?token=`
/// and a 43-character token: nothing of any request's `Host` ever reaches an email.
fn assert_links_canonical(dep: &Deployment, p: &TestProject) -> usize {
    let prefix = format!("https://{}/verify?token=", p.host);
    let sent = dep.resend.sent.lock().expect("lock").clone();
    for m in &sent {
        let token = m.link.strip_prefix(&prefix).unwrap_or_else(|| {
            panic!("link not on the canonical origin: {}", m.link);
        });
        assert_eq!(token.len(), 43, "{}", m.link);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{}",
            m.link
        );
        // And the HTML body carries no other origin either.
        assert!(!m.html.contains("evil"), "{}", m.html);
    }
    sent.len()
}

on_both!(hostile_hosts_are_refused_and_links_use_the_canonical_origin);
async fn hostile_hosts_are_refused_and_links_use_the_canonical_origin(backend: Backend) {
    let (dep, app, p) = setup(backend).await;
    let victim = format!("{}@example.com", unique("victim"));
    let attacks = [
        format!("[{}]@evil.example", p.host),
        format!("[{}]:8080@evil.example:443", p.host),
        format!("{}@evil.example", p.host),
        format!("{}:443@evil.example", p.host),
        format!("evil.example#{}", p.host),
        format!("evil.example/{}", p.host),
        format!("{}/evil.example", p.host),
        format!("[{}]", p.host),
        "[localhost]".to_string(),
        format!("{}:99999", p.host),
        format!("{}:", p.host),
    ];
    for h in &attacks {
        for path in ["/login/email", "/login/google", "/login", "/v1/user"] {
            let (status, text) = if path == "/login/email" {
                raw(&app, &login_email_request(h.as_bytes(), &victim)).await
            } else {
                let req = format!("GET {path} HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n");
                raw(&app, req.as_bytes()).await
            };
            assert_eq!(status, 400, "Host {h:?} {path}: {text}");
            assert!(text.contains("x-request-id"), "{text}");
            if path == "/v1/user" {
                assert!(text.contains("\"invalid_host\""), "{text}");
            } else {
                assert!(text.contains("<h1>"), "a page for people: {text}");
            }
        }
    }
    assert_eq!(dep.resend.count(), 0, "no email for a hostile Host");

    // Accepted spellings of the project's host all give the one canonical link.
    for h in [
        p.host.to_uppercase(),
        format!("{}:443", p.host),
        format!("{}:8443", p.host),
    ] {
        let (status, text) = raw(&app, &login_email_request(h.as_bytes(), &victim)).await;
        assert_eq!(status, 200, "{h}: {text}");
    }
    assert_eq!(assert_links_canonical(&dep, &p), 3);
    app.shutdown().await;
}

/// Arbitrary `Host` values, built from the pieces attacks are made of: the server never answers
/// 5xx, and no email ever carries anything but the canonical origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_host_header_whatever_its_bytes_reaches_an_emitted_url() {
    let settings_dep = Deployment::new(Backend::Embedded).await;
    let app = settings_dep.spawn().await;
    let p = settings_dep.project(&app, true).await;
    let pieces: Vec<String> = vec![
        p.host.clone(),
        p.host.to_uppercase(),
        "evil.example".into(),
        "localhost".into(),
        "127.0.0.1".into(),
        "[::1]".into(),
        "@".into(),
        "[".into(),
        "]".into(),
        ":".into(),
        "443".into(),
        "8080".into(),
        "/".into(),
        "\\".into(),
        "#".into(),
        "?".into(),
        "%2e".into(),
        ".".into(),
        "-".into(),
        "_".into(),
        " ".into(),
        "\t".into(),
        "é".into(),
        "\u{feff}".into(),
        "xn--".into(),
        "'\"<>".into(),
    ];
    // Seeded, and the seed printed, so a failure can be replayed with REAUTH_PROP_SEED.
    let seed = std::env::var("REAUTH_PROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("REAUTH_PROP_SEED={seed}");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let mut served = 0;
    for i in 0..300 {
        let mut host = String::new();
        if i % 30 == 0 {
            // Every thirtieth request (always an email sign-in) uses the project's own host, so
            // the run always includes the case that must be served and must send a link.
            host.push_str(&p.host);
        } else {
            for _ in 0..rng.random_range(1..6) {
                host.push_str(&pieces[rng.random_range(0..pieces.len())]);
            }
        }
        let email = format!("prop{i}-{}@example.com", unique("u"));
        let path = ["/login/email", "/login/google", "/login"][i % 3];
        let (status, text) = if path == "/login/email" {
            raw(&app, &login_email_request(host.as_bytes(), &email)).await
        } else {
            let mut req = format!("GET {path} HTTP/1.1\r\nHost: ").into_bytes();
            req.extend_from_slice(host.as_bytes());
            req.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
            raw(&app, &req).await
        };
        assert!(
            (200..500).contains(&status),
            "Host {host:?} {path}: {status} {text}"
        );
        if path == "/login/google" && status == 303 {
            // The OAuth redirect_uri is the canonical one, whatever the Host said.
            let loc = text
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("location:"))
                .unwrap_or_default();
            let want = format!("redirect_uri=https%3A%2F%2F{}%2Fcallback%2Fgoogle", p.host);
            assert!(loc.contains(&want), "Host {host:?}: {loc}");
            assert!(!loc.contains("evil"), "Host {host:?}: {loc}");
        }
        if status == 200 || status == 303 {
            served += 1;
        }
        assert!(
            !text.contains("evil.example/verify") && !text.contains("@evil"),
            "{text}"
        );
    }
    let sent = assert_links_canonical(&settings_dep, &p);
    assert!(served > 0 && sent > 0, "some hosts were the project's own");
    app.shutdown().await;
}

on_both!(slow_and_idle_connections_are_closed_and_connections_are_capped);
async fn slow_and_idle_connections_are_closed_and_connections_are_capped(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let mut s = dep.settings();
    s.header_timeout_secs = 1;
    let app = dep.spawn_with(s).await;

    // Slowloris: half a request, then silence. Closed after the header timeout.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a connection that never finishes its headers is closed: {closed:?}"
    );

    // An idle keep-alive connection after one answered request: closed as well.
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match idle.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert_eq!(outcome, Ok(true), "an idle keep-alive connection is closed");
    app.shutdown().await;

    // The cap: with two connections held open, a third waits until one goes away.
    let mut s = dep.settings();
    s.max_connections = 2;
    s.header_timeout_secs = 30;
    let app = dep.spawn_with(s).await;
    let a = TcpStream::connect(app.addr).await.unwrap();
    let _b = TcpStream::connect(app.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = TcpStream::connect(app.addr).await.unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let early = tokio::time::timeout(Duration::from_millis(700), c.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "the third connection is not served while two are open"
    );
    drop(a);
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("served once a slot frees")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    app.shutdown().await;
}

on_both!(errors_the_server_makes_itself_use_the_envelope);
async fn errors_the_server_makes_itself_use_the_envelope(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let mut s = dep.settings();
    s.request_timeout_secs = 1;
    let app = dep.spawn_with(s).await;
    let p = dep.project(&app, false).await;

    let check_json = |status: u16, text: &str, want_status: u16, code: &str| {
        assert_eq!(status, want_status, "{text}");
        assert!(text.contains("application/json"), "{text}");
        assert!(text.contains(&format!("\"code\":\"{code}\"")), "{text}");
        for h in ["x-request-id: req_", "x-content-type-options: nosniff"] {
            assert!(text.contains(h), "{h}: {text}");
        }
    };

    // 413 from the body limit.
    let big = "x".repeat(100 * 1024);
    let req = format!(
        "POST /webhooks/stripe/{} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}",
        p.id,
        p.host,
        big.len()
    );
    let (status, text) = raw(&app, req.as_bytes()).await;
    check_json(status, &text, 413, "payload_too_large");
    // ... and as a page on a hosted route.
    let req = format!(
        "POST /login/email HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}",
        p.host,
        big.len()
    );
    let (status, text) = raw(&app, req.as_bytes()).await;
    assert_eq!(status, 413, "{text}");
    assert!(
        text.contains("text/html") && text.contains("<h1>Too large</h1>"),
        "{text}"
    );
    assert!(text.contains("x-request-id: req_"), "{text}");

    // 431: headers over the edge's limit, on the hot path's route and on a page.
    let big_cookie = format!("x={}", "a".repeat(40 * 1024));
    for (path, json) in [("/v1/user", true), ("/login", false)] {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nCookie: {big_cookie}\r\nConnection: close\r\n\r\n",
            p.host
        );
        let (status, text) = raw(&app, req.as_bytes()).await;
        if json {
            check_json(status, &text, 431, "headers_too_large");
        } else {
            assert_eq!(status, 431, "{text}");
            assert!(
                text.contains("<h1>Too large</h1>") && text.contains("x-request-id: req_"),
                "{text}"
            );
        }
    }

    // 400 from path extraction.
    let req = format!(
        "POST /webhooks/stripe/%FF%FE HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        p.host
    );
    let (status, text) = raw(&app, req.as_bytes()).await;
    check_json(status, &text, 400, "invalid_request");

    // 408: a body that never finishes.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(
        format!(
            "POST /webhooks/stripe/{} HTTP/1.1\r\nHost: {}\r\nContent-Length: 500\r\n\r\n{{\"partial\":",
            p.id, p.host
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut out))
        .await
        .expect("answered")
        .unwrap();
    check_json(
        String::from_utf8_lossy(&out[..n])
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        &String::from_utf8_lossy(&out[..n]),
        408,
        "timeout",
    );

    // 405 and 404 on API paths.
    let r = app
        .http
        .delete(app.url("/v1/user"))
        .header("host", &p.host)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().contains_key("x-request-id"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");

    // A caught panic: the real layer stack around a handler that panics.
    use tower::ServiceExt;
    async fn boom(uri: axum::http::Uri) -> String {
        if uri.path().ends_with("boom") {
            panic!("boom");
        }
        uri.to_string()
    }
    let boom = axum::Router::new()
        .route("/v1/boom", axum::routing::get(boom))
        .route("/boom", axum::routing::get(boom));
    let stack = reauth_http::app::layered(boom, app.handle.state.clone(), true);
    for (path, json) in [("/v1/boom", true), ("/boom", false)] {
        let req = axum::http::Request::get(path)
            .header("host", &p.host)
            .body(axum::body::Body::empty())
            .unwrap();
        let res = stack.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 500);
        assert!(res.headers().contains_key("x-request-id"));
        let ct = res.headers()["content-type"].to_str().unwrap().to_string();
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        if json {
            assert!(ct.starts_with("application/json"), "{ct}");
            assert!(body.contains("\"internal\""), "{body}");
        } else {
            assert!(ct.starts_with("text/html"), "{ct}");
            assert!(
                body.contains("Something went wrong") && !body.contains("boom"),
                "{body}"
            );
        }
    }

    // 429 carries the wait in the header and the body.
    let victim = format!("{}@example.com", unique("rl"));
    let mut last = None;
    for _ in 0..21 {
        last = Some(app.request_link(&p, &victim, None).await);
    }
    let r = last.unwrap();
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key("retry-after"));
    app.shutdown().await;
}

on_both!(operator_endpoints_live_on_the_ops_listener_only);
async fn operator_endpoints_live_on_the_ops_listener_only(backend: Backend) {
    let (_dep, app, p) = setup(backend).await;
    for path in ["/metrics", "/ops/supervision"] {
        for host in [p.host.as_str(), "localhost", "127.0.0.1"] {
            let r = app.get(host, path, &[]).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{host}{path}: {}", r.body);
            assert!(!r.body.contains(&p.id), "{}", r.body);
        }
        let r = app.ops_get(path).await;
        assert_eq!(r.status, StatusCode::OK, "ops {path}");
    }
    assert!(app.ops_get("/ops/supervision").await.body.contains(&p.id));
    assert!(
        app.ops_get("/metrics")
            .await
            .body
            .contains("reauth_http_requests_total")
    );
    for path in ["/healthz", "/readyz"] {
        assert_eq!(app.get(&p.host, path, &[]).await.status, StatusCode::OK);
        assert_eq!(app.ops_get(path).await.status, StatusCode::OK);
    }
    // `serve` has no outbox.
    assert_eq!(
        app.get(&p.host, "/dev/outbox", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    app.shutdown().await;
}

on_both!(a_spoofed_forwarded_for_does_not_escape_per_ip_limits);
async fn a_spoofed_forwarded_for_does_not_escape_per_ip_limits(backend: Backend) {
    let dep = Deployment::new(backend).await;
    // The test client plays the proxy: loopback is trusted, and appends the real client.
    let mut s = dep.settings();
    s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let app = dep.spawn_with(s).await;
    let p = dep.project(&app, true).await;
    let mut statuses = vec![];
    for i in 0..22 {
        let email = format!("{}@example.com", unique(&format!("xff{i}")));
        let spoof = format!("10.9.{}.{}, 203.0.113.7", i / 200, i % 200);
        let r = app
            .post_form(
                &p.host,
                "/login/email",
                &[("email", &email)],
                &[("x-forwarded-for", spoof)],
            )
            .await;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(&statuses[..20], &[200; 20], "{statuses:?}");
    assert_eq!(
        &statuses[20..],
        &[429, 429],
        "the leftmost hop is the client's to write: {statuses:?}"
    );
    // A different real client (rightmost hop) has its own budget.
    let r = app
        .post_form(
            &p.host,
            "/login/email",
            &[("email", &format!("{}@example.com", unique("other")))],
            &[("x-forwarded-for", "203.0.113.8".into())],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // Google starts are limited per IP too (each writes a row).
    let mut last = StatusCode::OK;
    for _ in 0..31 {
        last = app
            .get(
                &p.host,
                "/login/google",
                &[("x-forwarded-for", "198.51.100.4".into())],
            )
            .await
            .status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    app.shutdown().await;

    // Without trusted proxies the header means nothing: every spoof is the one peer.
    let app = dep.spawn().await;
    let mut last = StatusCode::OK;
    for i in 0..21 {
        last = app
            .post_form(
                &p.host,
                "/login/email",
                &[(
                    "email",
                    &format!("{}@example.com", unique(&format!("np{i}"))),
                )],
                &[("x-forwarded-for", format!("192.0.2.{i}"))],
            )
            .await
            .status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    app.shutdown().await;
}

on_both!(opening_a_magic_link_uses_nothing_until_the_person_continues);
async fn opening_a_magic_link_uses_nothing_until_the_person_continues(backend: Backend) {
    let (dep, app, p) = setup(backend).await;
    let email = format!("{}@example.com", unique("scan"));
    app.request_link(&p, &email, None).await;
    let mail = dep.resend.last_to(&email).await.unwrap();
    let token = link_token(&mail.link);

    // A scanner (and a person) may open it any number of times.
    let mut page = None;
    for _ in 0..3 {
        let r = app
            .get(&p.host, &format!("/verify?token={token}"), &[])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.set_cookie("reauth_session").is_none());
        assert!(r.body.contains("Continue as"), "{}", r.body);
        assert!(
            r.body.contains(&format!("{}…@example.com", &email[..1])),
            "{}",
            r.body
        );
        assert!(!r.body.contains(&email), "the address is masked");
        assert_eq!(r.headers["cache-control"], "no-store");
        // Not `no-referrer`: browsers would then send `Origin: null` on the button's POST.
        assert_eq!(r.headers["referrer-policy"], "same-origin");
        page = Some(r);
    }
    let page = page.unwrap();
    let nonce = page.cookie_value("reauth_verify").expect("cookie");
    let verify_cookie = page.set_cookie("reauth_verify").unwrap();
    assert!(verify_cookie.contains("SameSite=Strict") && verify_cookie.contains("HttpOnly"));
    let csrf = form_csrf(&page.body).unwrap();

    // Cross-site POSTs: without the page's cookie, with another token, from another origin.
    let refused = [
        app.post_form(
            &p.host,
            "/verify",
            &[("token", &token), ("csrf", &csrf)],
            &[],
        )
        .await,
        app.post_form(
            &p.host,
            "/verify",
            &[("token", &token), ("csrf", "forged")],
            &[("cookie", format!("reauth_verify={nonce}"))],
        )
        .await,
        app.post_form(
            &p.host,
            "/verify",
            &[("token", &token), ("csrf", &csrf)],
            &[
                ("cookie", format!("reauth_verify={nonce}")),
                ("origin", "https://evil.example".into()),
            ],
        )
        .await,
    ];
    for r in &refused {
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert!(r.set_cookie("reauth_session").is_none());
    }
    // The person's click: signed in, once.
    let r = app
        .post_form(
            &p.host,
            "/verify",
            &[("token", &token), ("csrf", &csrf)],
            &[
                ("cookie", format!("reauth_verify={nonce}")),
                ("origin", format!("https://{}", p.host)),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.cookie_value("reauth_session").is_some());
    let again = app.verify_link(&p.host, &token).await;
    assert_eq!(again.status, StatusCode::GONE);
    app.shutdown().await;
}

on_both!(google_on_a_project_without_it_says_it_is_not_enabled);
async fn google_on_a_project_without_it_says_it_is_not_enabled(backend: Backend) {
    let (_dep, app, p) = setup(backend).await;
    let r = app.get(&p.host, "/login/google", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.body
            .contains("Google sign-in is not enabled for this project"),
        "{}",
        r.body
    );
    app.shutdown().await;
}

on_both!(alias_hosts_move_people_to_the_canonical_origin);
async fn alias_hosts_move_people_to_the_canonical_origin(backend: Backend) {
    let (dep, app, p) = setup(backend).await;
    app.update_project(
        &p.id,
        reauth_actors::store::ProjectPatch {
            dev_hosts: Some(vec![format!("{}.localhost:8080", p.slug)]),
            ..Default::default()
        },
    )
    .await;
    let core = &app.handle.state.core;
    let alias = format!("{}.localhost:8080", p.slug);
    let dir = core.directory.clone();
    let alias_name = format!("{}.localhost", p.slug);
    common::eventually("alias served", Duration::from_secs(10), || {
        dir.by_host(&alias_name).is_some()
    })
    .await;
    let r = app.get(&alias, "/login?redirect_to=x", &[]).await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        r.location().as_deref(),
        Some(format!("https://{}/login?redirect_to=x", p.host).as_str())
    );
    // The API answers on the alias as it is (the SDK may be pointed at it).
    let r = app.get(&alias, "/v1/user", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A link asked for on the alias is still the canonical one.
    let email = format!("{}@example.com", unique("alias"));
    let r = app
        .post_form(&alias, "/login/email", &[("email", &email)], &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_links_canonical(&dep, &p);
    app.shutdown().await;
}
