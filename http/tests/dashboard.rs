//! The developer dashboard over real HTTP: members sign in with reauth's own magic links (the
//! console project, through the fake Resend), roles are enforced by the server, every form
//! needs its CSRF token, one org never sees another's projects, and the dashboard's cookie and
//! tenant sessions are worthless in each other's place.

#[macro_use]
mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use reauth_actors::admin::projects::NewProject;
use reauth_actors::admin::{Admin, Caller};
use reauth_runtime::config::Secret;

const DASH: &str = "dash.test.local";

struct Dash {
    dep: Deployment,
    app: TestApp,
}

impl Dash {
    async fn start(backend: Backend) -> Self {
        let dep = Deployment::new(backend).await;
        let mut s = dep.settings();
        s.dashboard_url = Some(format!("http://{DASH}"));
        let app = dep.spawn_with(s).await;
        // The console project sends its links through Resend (the fake).
        let admin = Admin::new(&app.handle.state.core);
        let console = admin.console_project().await.expect("console project");
        app.update_project(
            &console,
            reauth_actors::store::ProjectPatch {
                resend_api_key: Some(Some(Secret::new("re_console"))),
                ..Default::default()
            },
        )
        .await;
        Self { dep, app }
    }

    fn admin(&self) -> Admin {
        Admin::new(&self.app.handle.state.core)
    }

    /// A new org owned by `owner`, with one project; returns (org id, project).
    async fn org_with_project(&self, owner: &str) -> (String, TestProject) {
        let org = self
            .admin()
            .create_org("test", &unique("o"), "Org", owner)
            .await
            .expect("org");
        let p = self.dep.project(&self.app, false).await;
        // Hand the project to the org (as `reauth project create --org` would).
        let core = &self.app.handle.state.core;
        sqlx::query("UPDATE projects SET org_id = $1 WHERE id = $2")
            .bind(&org.id)
            .bind(&p.id)
            .execute(&core.svc.db.pool)
            .await
            .expect("assign project");
        (org.id, p)
    }

    async fn get(&self, path: &str, cookie: &str) -> Resp {
        self.app
            .get(
                DASH,
                path,
                &[("cookie", format!("reauth_dashboard={cookie}"))],
            )
            .await
    }

    async fn post(&self, path: &str, cookie: &str, form: &[(&str, &str)]) -> Resp {
        self.app
            .post_form(
                DASH,
                path,
                form,
                &[("cookie", format!("reauth_dashboard={cookie}"))],
            )
            .await
    }

    /// Sign in to the dashboard as a person does: the login form, the emailed link, the
    /// confirmation page and its button. Returns the dashboard cookie's value.
    async fn sign_in(&self, email: &str) -> String {
        let page = self.app.get(DASH, "/dashboard/login", &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let nonce = page
            .cookie_value("reauth_dashboard_nonce")
            .expect("nonce cookie");
        let csrf = form_csrf(&page.body).expect("login csrf");
        let nonce_cookie = ("cookie", format!("reauth_dashboard_nonce={nonce}"));
        let r = self
            .app
            .post_form(
                DASH,
                "/dashboard/login",
                &[("email", email), ("csrf", &csrf)],
                std::slice::from_ref(&nonce_cookie),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let mail = self.dep.resend.last_to(email).await.expect("link emailed");
        assert!(
            mail.link
                .starts_with(&format!("http://{DASH}/dashboard/verify?token=")),
            "the link is built from the configured origin: {}",
            mail.link
        );
        assert_eq!(mail.api_key, "re_console", "sent with the console's key");
        let token = link_token(&mail.link);
        let page = self
            .app
            .get(
                DASH,
                &format!("/dashboard/verify?token={token}"),
                std::slice::from_ref(&nonce_cookie),
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let csrf = form_csrf(&page.body).expect("verify csrf");
        let r = self
            .app
            .post_form(
                DASH,
                "/dashboard/verify",
                &[("token", &token), ("csrf", &csrf)],
                &[nonce_cookie],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let set = r.set_cookie("reauth_dashboard").expect("dashboard cookie");
        assert!(
            set.contains("HttpOnly") && set.contains("Path=/dashboard"),
            "{set}"
        );
        r.cookie_value("reauth_dashboard").expect("cookie value")
    }

    /// The CSRF token of a signed-in page.
    async fn csrf(&self, cookie: &str, path: &str) -> String {
        let page = self.get(path, cookie).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        form_csrf(&page.body).expect("csrf field")
    }
}

async fn a_member_signs_in_and_sees_only_their_orgs_projects(backend: Backend) {
    let d = Dash::start(backend).await;
    let ann = format!("{}@example.com", unique("ann"));
    let bob = format!("{}@example.com", unique("bob"));
    let (org_a, pa) = d.org_with_project(&ann).await;
    let (org_b, pb) = d.org_with_project(&bob).await;
    let cookie = d.sign_in(&ann).await;

    // The only org: straight to its projects.
    let home = d.get("/dashboard", &cookie).await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(
        home.location().as_deref(),
        Some(&*format!("/dashboard/orgs/{org_a}"))
    );
    let list = d.get(&format!("/dashboard/orgs/{org_a}"), &cookie).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains(&pa.slug), "{}", list.body);
    assert!(!list.body.contains(&pb.slug));

    // Another org's org pages and project pages are "not found", reads and writes alike.
    for path in [
        format!("/dashboard/orgs/{org_b}"),
        format!("/dashboard/orgs/{org_b}/members"),
        format!("/dashboard/projects/{}", pb.id),
        format!("/dashboard/projects/{}/users", pb.id),
        format!("/dashboard/projects/{}/branding", pb.id),
    ] {
        let r = d.get(&path, &cookie).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.body);
        assert!(!r.body.contains(&pb.slug));
    }
    let csrf = d.csrf(&cookie, &format!("/dashboard/orgs/{org_a}")).await;
    let r = d
        .post(
            &format!("/dashboard/projects/{}/branding", pb.id),
            &cookie,
            &[("csrf", &csrf), ("name", "Pwned")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = d
        .post(
            &format!("/dashboard/orgs/{org_b}/projects"),
            &cookie,
            &[("csrf", &csrf), ("slug", &unique("x"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let pb_now = d
        .admin()
        .get_project(&Caller::operator(None), &pb.id)
        .await
        .expect("project");
    assert_ne!(pb_now.name, "Pwned");

    // Creating a project lands in the member's own org, on its overview.
    let slug = unique("new");
    let r = d
        .post(
            &format!("/dashboard/orgs/{org_a}/projects"),
            &cookie,
            &[
                ("csrf", &csrf),
                ("slug", &slug),
                ("name", "New app"),
                ("origin", "https://new.example.com"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let overview = r.location().expect("to the overview");
    let page = d.get(&overview, &cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("New app") && page.body.contains("<svg"));
    // A bad slug is a readable error naming the field, with the input kept.
    let r = d
        .post(
            &format!("/dashboard/orgs/{org_a}/projects"),
            &cookie,
            &[("csrf", &csrf), ("slug", "Bad Slug!")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains("Slug:") && r.body.contains("Bad Slug!"),
        "{}",
        r.body
    );

    d.app.shutdown().await;
}
on_both!(a_member_signs_in_and_sees_only_their_orgs_projects);

async fn a_viewer_cannot_change_anything(backend: Backend) {
    let d = Dash::start(backend).await;
    let owner = format!("{}@example.com", unique("own"));
    let viewer = format!("{}@example.com", unique("view"));
    let (org, p) = d.org_with_project(&owner).await;
    let end_user = format!("{}@example.com", unique("u"));
    let end_token = sign_in(&d.app, &d.dep, &p, &end_user).await;

    // The owner invites the viewer through the members page.
    let oc = d.sign_in(&owner).await;
    let csrf = d.csrf(&oc, &format!("/dashboard/orgs/{org}/members")).await;
    let r = d
        .post(
            &format!("/dashboard/orgs/{org}/members"),
            &oc,
            &[("csrf", &csrf), ("email", &viewer), ("role", "viewer")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    let vc = d.sign_in(&viewer).await;
    let users = d
        .get(&format!("/dashboard/projects/{}/users", p.id), &vc)
        .await;
    assert_eq!(users.status, StatusCode::OK, "viewers read");
    assert!(users.body.contains(&end_user));
    let uid = users
        .body
        .split(&format!("/dashboard/projects/{}/users/", p.id))
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("user link")
        .to_string();
    let detail = d
        .get(&format!("/dashboard/projects/{}/users/{uid}", p.id), &vc)
        .await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(!detail.body.contains("Revoke"), "no buttons for a viewer");
    let csrf = form_csrf(&detail.body).expect("the sign-out form's csrf");
    let session_id: String = sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = $1")
        .bind(&uid)
        .fetch_one(&d.app.handle.state.core.svc.db.pool)
        .await
        .expect("session");

    // Every write is refused by the server, whatever the page shows.
    let pid = &p.id;
    let writes: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            format!("/dashboard/orgs/{org}/projects"),
            vec![("slug", "viewer-made")],
        ),
        (
            format!("/dashboard/projects/{pid}/branding"),
            vec![("name", "Viewer was here")],
        ),
        (format!("/dashboard/projects/{pid}/users/{uid}/ban"), vec![]),
        (
            format!("/dashboard/projects/{pid}/users/{uid}/delete"),
            vec![("confirm", "yes")],
        ),
        (
            format!("/dashboard/projects/{pid}/sessions/{session_id}/revoke"),
            vec![],
        ),
        (
            format!("/dashboard/projects/{pid}/domains"),
            vec![("hostname", "auth.viewer.example")],
        ),
        (
            format!("/dashboard/orgs/{org}/members"),
            vec![("email", "x@example.com"), ("role", "owner")],
        ),
        (format!("/dashboard/orgs/{org}/keys"), vec![("name", "k")]),
        (
            format!("/dashboard/projects/{pid}/credentials"),
            vec![("resend_api_key", "re_viewer")],
        ),
        (
            format!("/dashboard/projects/{pid}/billing"),
            vec![("price_0", "price_v"), ("plan_0", "free")],
        ),
        (
            format!("/dashboard/projects/{pid}/settings"),
            vec![
                ("origins", "https://viewer.example"),
                ("magic_link_minutes", "5"),
                ("session_days", "1"),
            ],
        ),
    ];
    for (path, mut form) in writes {
        form.push(("csrf", &csrf));
        let r = d.post(&path, &vc, &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.body);
        assert!(r.body.contains("viewer"), "the page says why: {}", r.body);
    }
    let keys = d.get(&format!("/dashboard/orgs/{org}/keys"), &vc).await;
    assert_eq!(
        keys.status,
        StatusCode::FORBIDDEN,
        "API keys are the owners'"
    );

    // Nothing changed: the session still works, the user is not banned, the name stands.
    assert_eq!(d.app.user(&p.host, &end_token).await.status, StatusCode::OK);
    let users = d
        .get(&format!("/dashboard/projects/{pid}/users"), &vc)
        .await;
    assert!(users.body.contains("active") && !users.body.contains(">banned<"));
    let now = d
        .admin()
        .get_project(&Caller::operator(None), pid)
        .await
        .expect("project");
    assert_ne!(now.name, "Viewer was here");
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(&uid)
    .fetch_one(&d.app.handle.state.core.svc.db.pool)
    .await
    .expect("count");
    assert_eq!(live, 1);

    // The same write by the owner goes through (the refusal was the role's).
    let csrf = d
        .csrf(&oc, &format!("/dashboard/projects/{pid}/branding"))
        .await;
    let r = d
        .post(
            &format!("/dashboard/projects/{pid}/branding"),
            &oc,
            &[
                ("csrf", &csrf),
                ("name", "Owner's name"),
                ("accent_color", "#0f766e"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    d.app.shutdown().await;
}
on_both!(a_viewer_cannot_change_anything);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_its_csrf_token_or_from_another_origin_is_refused() {
    let d = Dash::start(Backend::Embedded).await;
    let owner = format!("{}@example.com", unique("own"));
    let (_, p) = d.org_with_project(&owner).await;
    let c = d.sign_in(&owner).await;
    let path = format!("/dashboard/projects/{}/branding", p.id);
    let csrf = d.csrf(&c, &path).await;

    let missing = d.post(&path, &c, &[("name", "No token")]).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let wrong = d
        .post(
            &path,
            &c,
            &[("name", "Wrong token"), ("csrf", "0123456789abcdef")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    // Another session's token is a wrong token too.
    let other = d.sign_in(&owner).await;
    let theirs = d.csrf(&other, &path).await;
    assert_ne!(theirs, csrf);
    let r = d
        .post(&path, &c, &[("name", "Their token"), ("csrf", &theirs)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let foreign = d
        .app
        .post_form(
            DASH,
            &path,
            &[("name", "Cross-site"), ("csrf", &csrf)],
            &[
                ("cookie", format!("reauth_dashboard={c}")),
                ("origin", "https://evil.example".into()),
            ],
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    let name = |_: ()| async {
        d.admin()
            .get_project(&Caller::operator(None), &p.id)
            .await
            .expect("project")
            .name
    };
    assert!(!name(()).await.contains("token") && !name(()).await.contains("Cross"));

    // The login form needs its token too.
    let r = d
        .app
        .post_form(DASH, "/dashboard/login", &[("email", owner.as_str())], &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // With the right token and origin: done.
    let ok = d
        .app
        .post_form(
            DASH,
            &path,
            &[("name", "Right token"), ("csrf", &csrf)],
            &[
                ("cookie", format!("reauth_dashboard={c}")),
                ("origin", format!("http://{DASH}")),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(name(()).await, "Right token");
    d.app.shutdown().await;
}

async fn dashboard_and_tenant_sessions_are_worthless_in_each_others_place(backend: Backend) {
    let d = Dash::start(backend).await;
    let owner = format!("{}@example.com", unique("own"));
    let (org, p) = d.org_with_project(&owner).await;
    let dash = d.sign_in(&owner).await;
    assert_eq!(
        d.get(&format!("/dashboard/orgs/{org}"), &dash).await.status,
        StatusCode::OK
    );

    // The dashboard's token at a project: bearer or cookie, it is nobody.
    assert_eq!(
        d.app.user(&p.host, &dash).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = d
        .app
        .get(
            &p.host,
            "/v1/user",
            &[("cookie", format!("reauth_session={dash}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // … even by the same person signed in there.
    let tenant = sign_in(&d.app, &d.dep, &p, &owner).await;
    assert_eq!(d.app.user(&p.host, &tenant).await.status, StatusCode::OK);
    // A tenant session as the dashboard's cookie: back to the sign-in page.
    let r = d.get(&format!("/dashboard/orgs/{org}"), &tenant).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location().as_deref(), Some("/dashboard/login"));

    // Signing out of the dashboard ends that session only.
    let csrf = d.csrf(&dash, &format!("/dashboard/orgs/{org}")).await;
    let r = d.post("/dashboard/logout", &dash, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = d.get(&format!("/dashboard/orgs/{org}"), &dash).await;
    assert_eq!(r.location().as_deref(), Some("/dashboard/login"));
    assert_eq!(d.app.user(&p.host, &tenant).await.status, StatusCode::OK);
    d.app.shutdown().await;
}
on_both!(dashboard_and_tenant_sessions_are_worthless_in_each_others_place);

async fn revoking_an_end_users_session_in_the_dashboard_ends_it(backend: Backend) {
    let d = Dash::start(backend).await;
    let owner = format!("{}@example.com", unique("own"));
    let (_, p) = d.org_with_project(&owner).await;
    let ada = format!("ada-{}@example.com", unique("u"));
    let token = sign_in(&d.app, &d.dep, &p, &ada).await;
    assert_eq!(d.app.user(&p.host, &token).await.status, StatusCode::OK);
    let c = d.sign_in(&owner).await;

    // Search by the start of the address, then the user's page.
    let list = d
        .get(&format!("/dashboard/projects/{}/users?q=ada-", p.id), &c)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains(&ada));
    let none = d
        .get(&format!("/dashboard/projects/{}/users?q=zzz", p.id), &c)
        .await;
    assert!(!none.body.contains(&ada));
    let href = list
        .body
        .split("href=\"")
        .find(|s| s.starts_with(&format!("/dashboard/projects/{}/users/usr_", p.id)))
        .and_then(|s| s.split('"').next())
        .expect("the user's link")
        .to_string();
    let page = d.get(&href, &c).await;
    assert_eq!(page.status, StatusCode::OK);
    let revoke = page
        .body
        .split("action=\"")
        .find(|s| s.contains("/revoke?user="))
        .and_then(|s| s.split('"').next())
        .expect("a revoke form")
        .replace("&amp;", "&");
    let csrf = form_csrf(&page.body).expect("csrf");
    let r = d.post(&revoke, &c, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().is_some_and(|l| l.contains("ok=revoked")));
    assert_eq!(
        d.app.user(&p.host, &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Ban: refused at sign-in from then on; unban lifts it.
    let uid = href.rsplit('/').next().expect("user id").to_string();
    let r = d
        .post(
            &format!("/dashboard/projects/{}/users/{uid}/ban", p.id),
            &c,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = d.get(&href, &c).await;
    assert!(page.body.contains(">banned<") && page.body.contains("Unban"));
    let asked = d.app.request_link(&p, &ada, None).await;
    assert_eq!(asked.status, StatusCode::OK);
    let mail = d.dep.resend.last_to(&ada).await.expect("link");
    let r = d.app.verify_link(&p.host, &link_token(&mail.link)).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a banned user cannot sign in"
    );
    // A NUL in an id, a search or a form field is refused before SQL (not a 503).
    let r = d
        .get(&format!("/dashboard/projects/{}%00/users", p.id), &c)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = d
        .get(&format!("/dashboard/projects/{}/users?q=a%00b", p.id), &c)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = d
        .post(
            &format!("/dashboard/projects/{}/branding", p.id),
            &c,
            &[("csrf", &csrf), ("name", "a\0b")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    // An unknown dashboard address is a dashboard page.
    let r = d.get("/dashboard/nowhere", &c).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("Go to the dashboard"));
    // The overview counts it.
    let o = d.get(&format!("/dashboard/projects/{}", p.id), &c).await;
    assert!(o.body.contains("Active sessions"));
    d.app.shutdown().await;
}
on_both!(revoking_an_end_users_session_in_the_dashboard_ends_it);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branding_saved_in_the_dashboard_is_on_the_hosted_page() {
    let d = Dash::start(Backend::Embedded).await;
    let owner = format!("{}@example.com", unique("own"));
    let (_, p) = d.org_with_project(&owner).await;
    let c = d.sign_in(&owner).await;
    let path = format!("/dashboard/projects/{}/branding", p.id);
    let csrf = d.csrf(&c, &path).await;

    // The preview shows unsaved values and saves nothing (htmx gets the fragment only).
    let r = d
        .app
        .post_form(
            DASH,
            &format!("{path}/preview"),
            &[
                ("csrf", &csrf),
                ("name", "Acme Preview"),
                ("accent_color", "#be123c"),
            ],
            &[
                ("cookie", format!("reauth_dashboard={c}")),
                ("hx-request", "true".into()),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Acme Preview") && r.body.contains("#be123c"));
    assert!(!r.body.contains("<html"), "a fragment");
    // A bad colour is named.
    let r = d
        .post(
            &format!("{path}/preview"),
            &c,
            &[("csrf", &csrf), ("name", "A"), ("accent_color", "red")],
        )
        .await;
    assert!(r.body.contains("Accent colour"), "{}", r.body);

    let r = d
        .post(
            &path,
            &c,
            &[
                ("csrf", &csrf),
                ("name", "Acme"),
                ("accent_color", "#be123c"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let dir = d.app.handle.state.core.directory.clone();
    let id = p.id.clone();
    eventually(
        "branding loaded",
        std::time::Duration::from_secs(10),
        || dir.project(&id).is_some_and(|x| x.name == "Acme"),
    )
    .await;
    let hosted = d.app.get(&p.host, "/login", &[]).await;
    assert!(
        hosted.body.contains("Acme") && hosted.body.contains("#be123c"),
        "{}",
        hosted.body
    );
    d.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_get_no_link_and_the_dashboard_moves_to_its_configured_origin() {
    let d = Dash::start(Backend::Embedded).await;
    let stranger = format!("{}@example.com", unique("nobody"));
    let page = d.app.get(DASH, "/dashboard/login", &[]).await;
    let nonce = page.cookie_value("reauth_dashboard_nonce").expect("nonce");
    let csrf = form_csrf(&page.body).expect("csrf");
    let before = d.dep.resend.count();
    let r = d
        .app
        .post_form(
            DASH,
            "/dashboard/login",
            &[("email", stranger.as_str()), ("csrf", &csrf)],
            &[("cookie", format!("reauth_dashboard_nonce={nonce}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "the same page as for members");
    assert!(r.body.contains("Check your email"));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(d.dep.resend.count(), before, "no email to a non-member");

    // Opened on another host (a project's, or an IP), the dashboard moves to its own origin.
    let p = d.dep.project(&d.app, false).await;
    let r = d.app.get(&p.host, "/dashboard", &[]).await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        r.location().as_deref(),
        Some(&*format!("http://{DASH}/dashboard"))
    );
    let r = d.app.get("evil.example", "/dashboard/login", &[]).await;
    assert_eq!(
        r.location().as_deref(),
        Some(&*format!("http://{DASH}/dashboard/login"))
    );
    // Pages carry their own policy: scripts from the dashboard only.
    let csp = page
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let js = d.app.get(DASH, "/dashboard/assets/htmx.min.js", &[]).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.body.contains("htmx"));
    let js = d.app.get(DASH, "/dashboard/assets/dashboard.js", &[]).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.body.contains("data-copy"));
    d.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_manage_members_and_keys_and_keep_one_owner() {
    let d = Dash::start(Backend::Embedded).await;
    let owner = format!("{}@example.com", unique("own"));
    let (org, _) = d.org_with_project(&owner).await;
    let c = d.sign_in(&owner).await;
    let members = format!("/dashboard/orgs/{org}/members");
    let csrf = d.csrf(&c, &members).await;
    let admin_email = format!("{}@example.com", unique("adm"));
    let r = d
        .post(
            &members,
            &c,
            &[("csrf", &csrf), ("email", &admin_email), ("role", "admin")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().is_some_and(|l| l.ends_with("ok=invited")));
    let invitation = d
        .dep
        .resend
        .last_to(&admin_email)
        .await
        .expect("invited by email");
    assert!(invitation.link.contains("/dashboard/verify?token="));
    let r = d
        .post(
            &members,
            &c,
            &[("csrf", &csrf), ("email", &admin_email), ("role", "admin")],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "already a member"
    );
    let r = d
        .post(
            &members,
            &c,
            &[
                ("csrf", &csrf),
                ("email", "not-an-email"),
                ("role", "admin"),
            ],
        )
        .await;
    assert!(r.body.contains("Email:"), "{}", r.body);
    let caller = Caller {
        org_id: org.clone(),
        ..Caller::operator(Some(&org))
    };
    let list = d.admin().list_members(&caller).await.expect("members");
    let me = list.iter().find(|m| m.email == owner).expect("owner");
    // The last owner cannot step down or leave.
    let r = d
        .post(
            &format!("{members}/{}/role", me.id),
            &c,
            &[("csrf", &csrf), ("role", "viewer")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let r = d
        .post(
            &format!("{members}/{}/remove", me.id),
            &c,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // An admin writes projects but cannot manage members or keys.
    let ac = d.sign_in(&admin_email).await;
    let acsrf = d.csrf(&ac, &members).await;
    let r = d
        .post(
            &members,
            &ac,
            &[
                ("csrf", &acsrf),
                ("email", "z@example.com"),
                ("role", "owner"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let slug = unique("adm");
    let r = d
        .post(
            &format!("/dashboard/orgs/{org}/projects"),
            &ac,
            &[("csrf", &acsrf), ("slug", &slug)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // Keys: created and shown once, then only the prefix; revoked.
    let keys = format!("/dashboard/orgs/{org}/keys");
    let r = d
        .post(
            &keys,
            &c,
            &[("csrf", &csrf), ("name", "Backend"), ("access", "read")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let secret = r
        .body
        .split("value=\"reauth_sk_")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(|s| format!("reauth_sk_{s}"))
        .expect("the secret, once");
    let auth = d
        .admin()
        .authenticate(&secret, None, None)
        .await
        .expect("the key works");
    assert_eq!(auth.scopes, vec!["*:read".to_string()]);
    let again = d.get(&keys, &c).await;
    assert!(!again.body.contains(&secret), "never shown again");
    let key_id = d.admin().list_api_keys(&caller).await.expect("keys")[0]
        .id
        .clone();
    let r = d
        .post(&format!("{keys}/{key_id}/revoke"), &c, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let key = d.admin().list_api_keys(&caller).await.expect("keys");
    assert!(key[0].revoked_at.is_some());

    // Removing the admin ends their access.
    let list = d.admin().list_members(&caller).await.expect("members");
    let adm = list.iter().find(|m| m.email == admin_email).expect("admin");
    let r = d
        .post(
            &format!("{members}/{}/remove", adm.id),
            &c,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        d.get(&format!("/dashboard/orgs/{org}"), &ac).await.status,
        StatusCode::NOT_FOUND
    );
    d.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_created_through_the_facade_in_an_org_shows_in_its_dashboard() {
    let d = Dash::start(Backend::Embedded).await;
    let owner = format!("{}@example.com", unique("own"));
    let org = d
        .admin()
        .create_org("test", &unique("o"), "Org", &owner)
        .await
        .expect("org");
    let slug = unique("f");
    d.admin()
        .create_project(
            &Caller::operator(Some(&org.id)),
            &NewProject {
                slug: slug.clone(),
                name: Some("Facade".into()),
                allowed_origins: vec![],
            },
        )
        .await
        .expect("project");
    let c = d.sign_in(&owner).await;
    let page = d.get(&format!("/dashboard/orgs/{}", org.id), &c).await;
    assert!(page.body.contains(&slug));
    d.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_write_only_and_the_plan_editor_saves_the_mapping() {
    let d = Dash::start(Backend::Embedded).await;
    let owner = format!("{}@example.com", unique("own"));
    let (_, p) = d.org_with_project(&owner).await;
    let c = d.sign_in(&owner).await;
    let creds = format!("/dashboard/projects/{}/credentials", p.id);
    let csrf = d.csrf(&c, &creds).await;
    let r = d
        .post(
            &creds,
            &c,
            &[
                ("csrf", &csrf),
                ("stripe_secret_key", "sk_test_abcdef9876"),
                ("email_from", "Acme <login@acme.example>"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = d.get(&creds, &c).await;
    assert!(page.body.contains("9876"), "the last four");
    assert!(
        !page.body.contains("sk_test_abcdef9876"),
        "never the secret"
    );
    assert!(page.body.contains("login@acme.example"));
    // Empty keeps; the Resend key set by the test harness is still there.
    let view = d
        .admin()
        .get_credentials(&Caller::operator(None), &p.id)
        .await
        .expect("credentials");
    assert!(view.resend_api_key.set && view.stripe_secret_key.set);
    // A wrong kind of key is named; the box clears one.
    let r = d
        .post(
            &creds,
            &c,
            &[("csrf", &csrf), ("stripe_webhook_secret", "nope")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("Stripe webhook secret:"), "{}", r.body);
    let r = d
        .post(
            &creds,
            &c,
            &[("csrf", &csrf), ("clear_stripe_secret_key", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let view = d
        .admin()
        .get_credentials(&Caller::operator(None), &p.id)
        .await
        .expect("credentials");
    assert!(!view.stripe_secret_key.set);

    let billing = format!("/dashboard/projects/{}/billing", p.id);
    let page = d.get(&billing, &c).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    // (minijinja escapes '/' in values as &#x2f;)
    assert!(
        page.body
            .contains(&format!("webhooks&#x2f;stripe&#x2f;{}", p.id)),
        "{}",
        page.body
    );
    let r = d
        .post(
            &billing,
            &c,
            &[
                ("csrf", &csrf),
                ("price_0", "price_pro"),
                ("plan_0", "pro"),
                ("features_0", "export, api"),
                ("price_1", ""),
                ("plan_1", ""),
                ("features_1", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let view = d
        .admin()
        .get_project(&Caller::operator(None), &p.id)
        .await
        .expect("project");
    assert_eq!(view.plans.len(), 1);
    assert_eq!(
        view.plans[0].features,
        vec!["export".to_string(), "api".to_string()]
    );
    let r = d
        .post(
            &billing,
            &c,
            &[("csrf", &csrf), ("price_0", "price_x"), ("plan_0", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("Row 1"), "{}", r.body);
    // Settings: origins one per line, lifetimes in minutes and days; a bad origin is named.
    let settings = format!("/dashboard/projects/{}/settings", p.id);
    let r = d
        .post(
            &settings,
            &c,
            &[
                ("csrf", &csrf),
                ("origins", "https://app.acme.example\nhttp://localhost:*"),
                ("magic_link_minutes", "10"),
                ("session_days", "7"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let view = d
        .admin()
        .get_project(&Caller::operator(None), &p.id)
        .await
        .expect("project");
    assert_eq!(
        view.allowed_origins,
        vec![
            "https://app.acme.example".to_string(),
            "http://localhost:*".to_string()
        ]
    );
    assert_eq!(
        (view.magic_link_ttl_secs, view.session_ttl_secs),
        (600, 7 * 86_400)
    );
    let r = d
        .post(
            &settings,
            &c,
            &[
                ("csrf", &csrf),
                ("origins", "ftp://nope"),
                ("magic_link_minutes", "10"),
                ("session_days", "7"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("Allowed origins:"), "{}", r.body);
    let r = d
        .post(
            &settings,
            &c,
            &[
                ("csrf", &csrf),
                ("origins", ""),
                ("magic_link_minutes", "soon"),
                ("session_days", "7"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("Sign-in link lifetime"), "{}", r.body);
    // Every project page renders for the owner.
    for tab in [
        "/settings",
        "",
        "/users",
        "/branding",
        "/credentials",
        "/billing",
        "/domains",
        "/emails",
    ] {
        let r = d
            .get(&format!("/dashboard/projects/{}{tab}", p.id), &c)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{tab}: {}", r.body);
    }
    d.app.shutdown().await;
}

/// `GET /dashboard/login/google`: to Google, with the dashboard's own callback (its configured
/// origin); returns Google's URL and the browser-binding cookie.
async fn google_start(d: &Dash) -> (String, String) {
    let r = d.app.get(DASH, "/dashboard/login/google", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let url = r.location().expect("to Google");
    assert!(url.starts_with(&d.dep.google.url), "{url}");
    assert!(
        url.contains("redirect_uri=http%3A%2F%2Fdash.test.local%2Fdashboard%2Fcallback%2Fgoogle"),
        "{url}"
    );
    let browser = r
        .cookie_value("reauth_dashboard_oauth")
        .expect("browser binding");
    (url, browser)
}

async fn google_callback(d: &Dash, code: &str, state: &str, browser: &str) -> Resp {
    d.app
        .get(
            DASH,
            &format!("/dashboard/callback/google?code={code}&state={state}"),
            &[("cookie", format!("reauth_dashboard_oauth={browser}"))],
        )
        .await
}

async fn members_sign_in_with_google_when_the_console_project_has_a_client(backend: Backend) {
    let d = Dash::start(backend).await;
    let ann = format!("{}@example.com", unique("ann"));
    let (_, p) = d.org_with_project(&ann).await;

    // No Google client on the console project: no button, and the route says why.
    let page = d.app.get(DASH, "/dashboard/login", &[]).await;
    assert!(
        !page.body.contains("/dashboard/login/google"),
        "{}",
        page.body
    );
    let r = d.app.get(DASH, "/dashboard/login/google", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);

    let console = d.admin().console_project().await.expect("console");
    d.app
        .update_project(
            &console,
            reauth_actors::store::ProjectPatch {
                google_client_id: Some(Some("gid-console".into())),
                google_client_secret: Some(Some(Secret::new("gsecret-console"))),
                ..Default::default()
            },
        )
        .await;
    let dir = d.app.handle.state.core.directory.clone();
    eventually(
        "the console's Google client loaded",
        Duration::from_secs(10),
        || {
            dir.project(&console)
                .is_some_and(|p| p.google_client_id.is_some())
        },
    )
    .await;
    let page = d.app.get(DASH, "/dashboard/login", &[]).await;
    assert!(
        page.body.contains("/dashboard/login/google"),
        "{}",
        page.body
    );

    // A member: signed in, the dashboard shows their org's project.
    d.dep.google.sign_in_as(GoogleProfile {
        sub: unique("g"),
        email: ann.clone(),
        email_verified: true,
        name: "Ann".into(),
    });
    let (url, browser) = google_start(&d).await;
    let (code, state) = d.dep.google.approve(url).await;
    let r = google_callback(&d, &code, &state, &browser).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location().as_deref(), Some("/dashboard"));
    let cookie = r
        .cookie_value("reauth_dashboard")
        .expect("dashboard cookie");
    let home = d.get("/dashboard", &cookie).await;
    let projects = if home.status == StatusCode::SEE_OTHER {
        d.get(&home.location().expect("to the org"), &cookie).await
    } else {
        home
    };
    assert_eq!(projects.status, StatusCode::OK, "{}", projects.body);
    assert!(projects.body.contains(&p.slug), "{}", projects.body);
    // The token exchange used the same redirect URI (Google requires it).
    let reqs = d.dep.google.token_requests();
    assert_eq!(
        reqs.last()
            .and_then(|r| r.get("redirect_uri"))
            .and_then(|v| v.as_str()),
        Some("http://dash.test.local/dashboard/callback/google"),
        "{reqs:?}"
    );

    // Someone with a Google account who is no member: refused, no cookie.
    d.dep.google.sign_in_as(GoogleProfile {
        sub: unique("g"),
        email: format!("{}@example.com", unique("stranger")),
        email_verified: true,
        name: "Stranger".into(),
    });
    let (url, browser) = google_start(&d).await;
    let (code, state) = d.dep.google.approve(url).await;
    let r = google_callback(&d, &code, &state, &browser).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        r.cookie_value("reauth_dashboard")
            .is_none_or(|c| c.is_empty())
    );

    // A callback from another browser (not the one that started it): refused.
    d.dep.google.sign_in_as(GoogleProfile {
        sub: unique("g"),
        email: ann.clone(),
        email_verified: true,
        name: "Ann".into(),
    });
    let (url, _) = google_start(&d).await;
    let (code, state) = d.dep.google.approve(url).await;
    let r = google_callback(&d, &code, &state, "someone-elses-cookie").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.cookie_value("reauth_dashboard")
            .is_none_or(|c| c.is_empty())
    );
    d.app.shutdown().await;
}
on_both!(members_sign_in_with_google_when_the_console_project_has_a_client);
