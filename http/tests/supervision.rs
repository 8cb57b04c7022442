//! Supervision that recovers: a project supervisor that exceeds its restart intensity is
//! restarted by the root with every project; a root that gives up ends the process with the
//! reason instead of leaving it half dead; deleting a project is a normal stop.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{Backend, Deployment, TestApp, TestProject, unique};

/// Crash the projects' actors until the project supervisor escalates (more than 10 failures
/// within a minute) and the root has started a new one.
async fn escalate(app: &TestApp, projects: &[TestProject]) {
    let tenants = app.handle.state.core.tenants.clone();
    let before = tenants.supervisor_cell().map(|c| c.get_id());
    let start = Instant::now();
    loop {
        let now = tenants.supervisor_cell().map(|c| c.get_id());
        if now.is_some() && now != before {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the project supervisor never escalated"
        );
        for p in projects {
            tenants.inject_failure(&p.id, "injected crash");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn all_running(app: &TestApp, projects: &[TestProject]) {
    let tenants = app.handle.state.core.tenants.clone();
    let start = Instant::now();
    loop {
        let children = tenants.children().await;
        let up = projects
            .iter()
            .all(|p| children.iter().any(|c| c.id == p.id && c.alive));
        if up && tenants.is_up() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "projects not running again: {children:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_project_supervisor_that_gives_up_is_restarted_with_every_project(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let mut projects = vec![];
    for _ in 0..3 {
        projects.push(dep.project(&app, false).await);
    }
    let token = common::sign_in(
        &app,
        &dep,
        &projects[0],
        &format!("{}@example.com", unique("sup")),
    )
    .await;

    escalate(&app, &projects).await;
    all_running(&app, &projects).await;

    let r = app.get(&projects[1].host, "/readyz", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["tenants"], "ok");
    // Logins go through the new actors; the old session still reads.
    common::sign_in(
        &app,
        &dep,
        &projects[1],
        &format!("{}@example.com", unique("after")),
    )
    .await;
    assert_eq!(
        app.user(&projects[0].host, &token).await.status,
        StatusCode::OK
    );
    let metrics = app.ops_get("/metrics").await.body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("reauth_actor_escalations_total{kind=\"tenants\"}")),
        "escalation counted"
    );
    app.shutdown().await;
}
on_both!(a_project_supervisor_that_gives_up_is_restarted_with_every_project);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_that_gives_up_ends_the_process_with_the_reason() {
    let dep = Deployment::new(Backend::Embedded).await;
    let app = dep.spawn().await;
    // Three: one project alone is parked after five failures; escalation needs more than ten
    // failures across projects.
    let projects = vec![
        dep.project(&app, false).await,
        dep.project(&app, false).await,
        dep.project(&app, false).await,
    ];
    let tenants = app.handle.state.core.tenants.clone();
    // The root allows five restarts of the project supervisor; the sixth escalation is fatal.
    for _ in 0..5 {
        escalate(&app, &projects).await;
        all_running(&app, &projects).await;
    }
    let start = Instant::now();
    while tenants.is_up() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "root never gave up"
        );
        for p in &projects {
            tenants.inject_failure(&p.id, "injected crash");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = app.get(&projects[0].host, "/readyz", &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.json()["tenants"], "down");
    // `reauth serve` returns the reason (and exits non-zero) instead of serving half dead.
    let res = tokio::time::timeout(
        Duration::from_secs(15),
        app.handle.run_until(std::future::pending()),
    )
    .await
    .expect("serve returns once the root gave up");
    let err = res.expect_err("an error, for a non-zero exit");
    assert!(err.to_string().contains("root supervisor gave up"), "{err}");
}

async fn deleting_a_project_is_a_normal_stop(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let gone = dep.project(&app, false).await;
    let kept = dep.project(&app, false).await;
    let core = app.handle.state.core.clone();
    let sup = core.tenants.supervisor_cell().map(|c| c.get_id());

    sqlx::query("DELETE FROM projects WHERE id = $1")
        .bind(&gone.id)
        .execute(&core.svc.db.pool)
        .await
        .unwrap();
    core.project_changed(&gone.id).await.unwrap();

    let start = Instant::now();
    loop {
        let children = core.tenants.children().await;
        if !children.iter().any(|c| c.id == gone.id) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "deleted project still supervised: {children:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(core.directory.project(&gone.id).is_none());
    let r = app.get(&gone.host, "/login", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Not a failure: nothing restarts, and the others are untouched.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let children = core.tenants.children().await;
    assert!(!children.iter().any(|c| c.id == gone.id), "{children:?}");
    let k = children.iter().find(|c| c.id == kept.id).expect("kept");
    assert!(k.alive);
    assert_eq!(k.restarts, 0);
    assert_eq!(core.tenants.supervisor_cell().map(|c| c.get_id()), sup);
    assert_eq!(
        app.get(&kept.host, "/readyz", &[]).await.status,
        StatusCode::OK
    );
    app.shutdown().await;
}
on_both!(deleting_a_project_is_a_normal_stop);
