//! The `reauth` binary itself: `dev` on a fresh data dir serves health and actor metrics and
//! shuts down on SIGTERM; `project` commands manage projects with `--json` output, seal secrets
//! and are picked up by a running instance; `serve` refuses to start without a master key.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_reauth")
}

fn data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("reauth-cli-{}", reauth_runtime::ids::new_id("t")))
}

/// `reauth ARGS --data-dir DIR` on the embedded store, whatever the caller's environment.
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("REAUTH_DATABASE_URL")
        .env_remove("REAUTH_REDIS_URL")
        .env_remove("REAUTH_MASTER_KEY");
    c
}

fn reauth(dir: &Path, args: &[&str]) -> std::process::Output {
    command(dir, args).output().expect("run reauth")
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json output")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Dev(Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

async fn wait_ok(url: &str) {
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(url).await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{url} never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn dev_serves_health_and_actor_metrics_picks_up_cli_changes_and_stops_on_sigterm() {
    let dir = data_dir();
    let port = free_port();
    let ops_port = free_port();
    let child = Command::new(bin())
        .args(["dev", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--ops-listen", &format!("127.0.0.1:{ops_port}")])
        .arg("--data-dir")
        .arg(&dir)
        .env_remove("REAUTH_DATABASE_URL")
        .env_remove("REAUTH_REDIS_URL")
        .env_remove("REAUTH_MASTER_KEY")
        .env("REAUTH_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dev");
    let mut dev = Dev(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_ok(&format!("{base}/healthz")).await;
    // Operators' endpoints are on the ops listener only.
    let public = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(public.status(), 404);
    let metrics = reqwest::get(format!("http://127.0.0.1:{ops_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for m in ["reauth_actor_restarts_total", "reauth_http_requests_total"] {
        assert!(metrics.contains(m), "metrics lack {m}:\n{metrics}");
    }
    // The demo project (and the dashboard's console project once prepared).
    let alive = metrics
        .lines()
        .find_map(|l| l.strip_prefix("reauth_actors_alive{kind=\"project\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(alive.is_some_and(|n| n >= 1.0), "{metrics}");
    assert!(
        dir.join("master.key").exists(),
        "dev generated and kept a master key"
    );
    let login = reqwest::get(format!("{base}/login"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(login.contains("Sign in to Demo"));

    // A CLI change against the same embedded store shows up in the running server.
    let out = reauth(
        &dir,
        &[
            "project",
            "update",
            "demo",
            "--name",
            "Renamed Demo",
            "--json",
        ],
    );
    assert_eq!(json(&out)["name"], "Renamed Demo");
    let start = Instant::now();
    loop {
        let page = reqwest::get(format!("{base}/login"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if page.contains("Sign in to Renamed Demo") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "running server never saw the change"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGTERM: graceful shutdown, exit 0.
    let pid = dev.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = dev.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}

#[test]
fn project_commands_manage_projects_and_never_print_secrets() {
    let dir = data_dir();
    let out = reauth(
        &dir,
        &[
            "project",
            "create",
            "shop",
            "--name",
            "Shop",
            "--allowed-origin",
            "https://shop.example.com",
            "--json",
        ],
    );
    let p = json(&out);
    assert!(p["id"].as_str().unwrap().starts_with("prj_"));
    assert_eq!(p["slug"], "shop");
    assert_eq!(
        p["allowed_origins"],
        serde_json::json!(["https://shop.example.com"])
    );

    let out = reauth(&dir, &["project", "create", "shop", "--json"]);
    assert!(!out.status.success(), "duplicate slug refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = reauth(&dir, &["project", "create", "Bad Slug!"]);
    assert!(!out.status.success());

    let out = reauth(
        &dir,
        &[
            "project",
            "update",
            "shop",
            "--resend-api-key",
            "re_supersecret",
            "--google-client-id",
            "gid",
            "--google-client-secret",
            "gsecret_value",
            "--stripe-secret-key",
            "sk_test_secret",
            "--stripe-webhook-secret",
            "whsec_secret",
            "--plan",
            "price_1=pro:export,api",
            "--plan",
            "price_2=basic",
            "--accent-color",
            "#0f766e",
            "--session-ttl",
            "86400",
            "--magic-link-ttl",
            "600",
            "--allowed-origin",
            "https://a.example.com",
            "--allowed-origin",
            "https://b.example.com",
            "--json",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    for secret in [
        "re_supersecret",
        "gsecret_value",
        "sk_test_secret",
        "whsec_secret",
    ] {
        assert!(!text.contains(secret), "secret {secret} printed");
    }
    let p = json(&out);
    assert_eq!(p["resend_api_key_set"], true);
    assert_eq!(p["stripe_webhook_secret_set"], true);
    assert_eq!(p["session_ttl_secs"], 86400);
    assert_eq!(p["magic_link_ttl_secs"], 600);
    assert_eq!(p["allowed_origins"][0], "https://a.example.com");
    assert_eq!(
        p["plans"][0],
        serde_json::json!({"price_id": "price_1", "plan": "pro", "features": ["export", "api"]})
    );
    assert_eq!(p["plans"][1]["features"], serde_json::json!([]));

    // Secrets are sealed at rest: the raw database file does not contain them.
    let raw = std::fs::read(dir.join("reauth.db")).unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(!raw.contains("re_supersecret") && !raw.contains("sk_test_secret"));

    for bad in [
        vec!["--accent-color", "red;}"],
        vec!["--allowed-origin", "https://x.example.com/path"],
        vec!["--plan", "nonsense"],
        vec!["--session-ttl", "5"],
        vec!["--logo-url", "javascript:alert(1)"],
    ] {
        let mut args = vec!["project", "update", "shop"];
        args.extend(bad.iter().copied());
        let out = reauth(&dir, &args);
        assert!(!out.status.success(), "{bad:?} accepted");
    }

    let list = json(&reauth(&dir, &["project", "list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 1);
    let shown = json(&reauth(&dir, &["project", "show", "shop", "--json"]));
    assert_eq!(shown["id"], p["id"]);
    let out = reauth(&dir, &["project", "show", "nope", "--json"]);
    assert!(!out.status.success());
    assert!(reauth(&dir, &["migrate"]).status.success());
}

#[test]
fn serve_refuses_to_start_without_a_master_key() {
    let dir = data_dir();
    let out = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&dir)
        .env_remove("REAUTH_MASTER_KEY")
        .env_remove("REAUTH_DATABASE_URL")
        .env_remove("REAUTH_REDIS_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("REAUTH_MASTER_KEY is required"));
}

#[test]
fn dev_refuses_a_reachable_address_unless_told_and_says_why() {
    let dir = data_dir();
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let out = reauth(&dir, &["dev", "--listen", listen, "--ops-listen", "off"]);
        assert!(!out.status.success(), "{listen}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("refuses to listen")
                && err.contains("/dev/outbox")
                && err.contains("--allow-remote"),
            "{err}"
        );
    }
    // The ops listener is held to the same rule.
    let out = reauth(
        &dir,
        &[
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--ops-listen",
            "0.0.0.0:0",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));
}

#[test]
fn unknown_reauth_variables_are_named_with_the_closest_setting() {
    let dir = data_dir();
    let out = command(&dir, &["project", "list", "--json"])
        .env("REAUTH_LISTN", "127.0.0.1:1")
        .env("REAUTH_TRUST_PROXY", "true")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("REAUTH_LISTN is not a reauth setting")
            && err.contains("did you mean REAUTH_LISTEN?"),
        "{err}"
    );
    assert!(
        err.contains("REAUTH_TRUST_PROXY is not a reauth setting"),
        "{err}"
    );
}

#[tokio::test]
async fn org_and_api_key_commands_bootstrap_the_management_api() {
    let dir = data_dir();
    let org = json(&reauth(
        &dir,
        &[
            "org",
            "create",
            "acme",
            "--name",
            "Acme",
            "--owner-email",
            "Owner@Acme.example",
            "--json",
        ],
    ));
    assert!(org["id"].as_str().unwrap().starts_with("org_"));
    let out = reauth(
        &dir,
        &["org", "create", "acme", "--owner-email", "x@acme.example"],
    );
    assert!(!out.status.success(), "duplicate org refused");
    let out = reauth(
        &dir,
        &["org", "create", "acme2", "--owner-email", "not-an-email"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--owner-email"));

    let key = json(&reauth(
        &dir,
        &[
            "api-key", "create", "--org", "acme", "--name", "ci", "--json",
        ],
    ));
    let secret = key["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("reauth_sk_"));
    assert!(key["id"].as_str().unwrap().starts_with("key_"));
    let out = reauth(
        &dir,
        &[
            "api-key",
            "create",
            "--org",
            "acme",
            "--scope",
            "nope:write",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scopes"));
    json(&reauth(
        &dir,
        &["project", "create", "acme-app", "--org", "acme", "--json"],
    ));
    // The list never shows a secret.
    let out = reauth(&dir, &["api-key", "list", "--org", "acme", "--json"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&secret));

    // A running instance serves the org's projects to the key, and refuses it once revoked.
    let port = free_port();
    let child = Command::new(bin())
        .args([
            "dev",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--ops-listen",
            "off",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .env_remove("REAUTH_DATABASE_URL")
        .env_remove("REAUTH_REDIS_URL")
        .env_remove("REAUTH_MASTER_KEY")
        .env("REAUTH_LOG_LEVEL", "warn")
        .env("REAUTH_REVALIDATE_SECS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dev");
    let _dev = Dev(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_ok(&format!("{base}/healthz")).await;
    let http = reqwest::Client::new();
    let list = |k: String| {
        let http = http.clone();
        let url = format!("{base}/api/v1/projects");
        async move { http.get(url).bearer_auth(k).send().await.unwrap() }
    };
    let r = list(secret.clone()).await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["data"][0]["slug"], "acme-app",
        "only the org's project (not the demo)"
    );
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let out = reauth(
        &dir,
        &[
            "api-key",
            "revoke",
            "--org",
            "acme",
            key["id"].as_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    // No bus reaches an embedded instance from the CLI: its revalidation pass (each second
    // here) drops the revoked key from the verified-key cache.
    let start = Instant::now();
    loop {
        if list(secret.clone()).await.status() == 401 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "revoked key still accepted"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn allowed_origins_can_be_added_and_removed_one_at_a_time() {
    let dir = data_dir();
    json(&reauth(
        &dir,
        &[
            "project",
            "create",
            "shop",
            "--allowed-origin",
            "https://a.example.com",
            "--json",
        ],
    ));
    let p = json(&reauth(
        &dir,
        &[
            "project",
            "update",
            "shop",
            "--add-allowed-origin",
            "http://localhost:*",
            "--add-allowed-origin",
            "https://b.example.com",
            "--json",
        ],
    ));
    assert_eq!(
        p["allowed_origins"],
        serde_json::json!([
            "https://a.example.com",
            "http://localhost:*",
            "https://b.example.com"
        ])
    );
    let p = json(&reauth(
        &dir,
        &[
            "project",
            "update",
            "shop",
            "--remove-allowed-origin",
            "https://a.example.com",
            "--json",
        ],
    ));
    assert_eq!(
        p["allowed_origins"],
        serde_json::json!(["http://localhost:*", "https://b.example.com"])
    );
    let out = reauth(
        &dir,
        &[
            "project",
            "update",
            "shop",
            "--remove-allowed-origin",
            "https://nope.example.com",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an allowed origin"));
    // A port wildcard is for loopback hosts only.
    let out = reauth(
        &dir,
        &[
            "project",
            "update",
            "shop",
            "--add-allowed-origin",
            "https://evil.example.com:*",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allowed-origins"));
}
