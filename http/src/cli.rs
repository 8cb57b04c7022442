//! The `reauth` command line: `serve`, `dev`, `migrate`, `org create|list`,
//! `api-key create|list|revoke`, `project create|list|show|update`, `stripe reconcile`.
//! Everything but serving goes through the application-service façade
//! ([`reauth_actors::admin::Admin`]), the same door the Management API uses.
//! Flags mirror the `REAUTH_*` environment variables; `--json` output is for scripts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use reauth_actors::admin::projects::{Credentials, NewProject, ProjectUpdate};
use reauth_actors::admin::{Admin, AdminError, Caller};
use reauth_actors::model::{PlanMapping, Project};
use reauth_actors::reconcile;
use reauth_actors::services::Services;
use reauth_runtime::crypto::MasterKey;
use reauth_runtime::{Settings, cache};

use crate::app::{self, Mode};

#[derive(Parser)]
#[command(
    name = "reauth",
    version,
    about = "Self-hostable auth + subscriptions for indie SaaS"
)]
struct Cli {
    /// TOML settings file (keys as in the README's configuration table).
    #[arg(long, global = true, env = "REAUTH_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone, Default)]
struct StoreFlags {
    /// Address to listen on (REAUTH_LISTEN).
    #[arg(long)]
    listen: Option<String>,
    /// Directory of the embedded database and dev master key (REAUTH_DATA_DIR).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Operator listener for /metrics and /ops/* (REAUTH_OPS_LISTEN; `off` to turn it off).
    #[arg(long)]
    ops_listen: Option<String>,
}

#[derive(Args, Clone, Default)]
struct DevFlags {
    #[command(flatten)]
    store: StoreFlags,
    /// Let `dev` listen on a non-loopback address. Its outbox shows every sign-in link, so
    /// anyone who can reach it can sign in as anyone.
    #[arg(long)]
    allow_remote: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run in production: configured database and cache; requires REAUTH_MASTER_KEY.
    Serve(StoreFlags),
    /// Run the embedded default: SQLite, in-process cache, dev outbox, demo project on localhost.
    Dev(DevFlags),
    /// Apply database migrations and exit.
    Migrate(StoreFlags),
    /// Manage organizations (the customers that own projects).
    #[command(subcommand)]
    Org(OrgCmd),
    /// Manage an organization's Management API keys.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCmd),
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Stripe maintenance.
    #[command(subcommand)]
    Stripe(StripeCmd),
    /// A project's custom domains: add (prints the DNS records to create), list, verify, remove.
    #[command(subcommand)]
    Domain(DomainCmd),
}

#[derive(Subcommand)]
enum DomainCmd {
    /// Add a host name (pending until verified); prints the TXT and CNAME records to create
    /// and the Google redirect URI to register.
    Add {
        project: String,
        hostname: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// List a project's domains with their status and, when failing, why.
    List {
        project: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// Check a domain's DNS now (by host name or `dom_…` id).
    Verify {
        project: String,
        domain: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// Make a domain the primary (the canonical origin once verified; other hosts redirect).
    Primary {
        project: String,
        domain: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// Remove a domain (it stops routing on every instance).
    Remove {
        project: String,
        domain: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
}

#[derive(Subcommand)]
enum StripeCmd {
    /// Compare the subscriptions Stripe lists with what reauth stores and repair the drift
    /// (status, price, period end, cancel at period end; missing subscriptions of known users).
    /// Running instances hear of repairs over Redis when it is configured.
    Reconcile {
        /// Only this project (default: every project with a Stripe secret key).
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
}

#[derive(Subcommand)]
enum OrgCmd {
    /// Create an organization with its first owner.
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        /// The owner's email (signs in to the dashboard).
        #[arg(long)]
        owner_email: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// List organizations.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
}

#[derive(Subcommand)]
enum ApiKeyCmd {
    /// Create a key (printed once: store it now).
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: Option<String>,
        /// `resource:read` or `resource:write` (repeatable; `*` for every resource). Default:
        /// `*:write`.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// List an organization's keys (never the secret).
    List {
        #[arg(long)]
        org: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// Revoke a key, on every running instance.
    Revoke {
        #[arg(long)]
        org: String,
        key_id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
}

#[derive(Subcommand)]
enum ProjectCmd {
    /// Create a project.
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        /// The organization that owns it (its slug); the Management API sees only its org's.
        #[arg(long)]
        org: Option<String>,
        /// Allowed redirect origin (repeatable; the first is the default redirect).
        #[arg(long = "allowed-origin")]
        allowed_origins: Vec<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// List projects.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// Show one project (secrets are never shown, only whether they are set).
    Show {
        slug: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// Change a project's settings.
    Update(Box<UpdateArgs>),
}

#[derive(Args)]
struct UpdateArgs {
    slug: String,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    logo_url: Option<String>,
    /// `#rgb` or `#rrggbb`.
    #[arg(long)]
    accent_color: Option<String>,
    /// Allowed redirect origin (repeatable; replaces the list; the first is the default redirect).
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
    /// Add an allowed origin, keeping the others (repeatable).
    #[arg(long = "add-allowed-origin")]
    add_allowed_origins: Vec<String>,
    /// Remove an allowed origin, keeping the others (repeatable).
    #[arg(long = "remove-allowed-origin")]
    remove_allowed_origins: Vec<String>,
    /// Extra hosts served without a domain (e.g. localhost).
    #[arg(long = "dev-host")]
    dev_hosts: Vec<String>,
    #[arg(long)]
    email_from: Option<String>,
    #[arg(long, env = "REAUTH_PROJECT_RESEND_API_KEY", hide_env_values = true)]
    resend_api_key: Option<String>,
    #[arg(long)]
    google_client_id: Option<String>,
    #[arg(
        long,
        env = "REAUTH_PROJECT_GOOGLE_CLIENT_SECRET",
        hide_env_values = true
    )]
    google_client_secret: Option<String>,
    #[arg(long, env = "REAUTH_PROJECT_STRIPE_SECRET_KEY", hide_env_values = true)]
    stripe_secret_key: Option<String>,
    #[arg(
        long,
        env = "REAUTH_PROJECT_STRIPE_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    stripe_webhook_secret: Option<String>,
    /// Plan mapping `PRICE_ID=PLAN[:feature,feature]` (repeatable; replaces the list).
    #[arg(long = "plan")]
    plans: Vec<String>,
    /// Magic link lifetime in seconds (60..=86400).
    #[arg(long)]
    magic_link_ttl: Option<i64>,
    /// Session lifetime in seconds (300..=31536000).
    #[arg(long)]
    session_ttl: Option<i64>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreFlags,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn settings(config: Option<&PathBuf>, flags: &StoreFlags) -> anyhow::Result<Settings> {
    let mut s = Settings::load(config.map(PathBuf::as_path), std::env::vars())?;
    warn_unknown_env(&s);
    if let Some(l) = &flags.listen {
        s.set("listen", l)?;
    }
    if let Some(d) = &flags.data_dir {
        s.data_dir = d.clone();
    }
    if let Some(o) = &flags.ops_listen {
        s.set("ops_listen", if o == "off" { "" } else { o })?;
    }
    Ok(s)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config.as_ref();
    match cli.cmd {
        Cmd::Serve(flags) => serve(settings(config, &flags)?, Mode::Serve).await,
        Cmd::Dev(flags) => {
            let s = settings(config, &flags.store)?;
            check_dev_listen(&s, flags.allow_remote)?;
            serve(s, Mode::Dev).await
        }
        Cmd::Migrate(flags) => {
            let s = settings(config, &flags)?;
            crate::telemetry::init("warn", s.log_format);
            app::open_db(&s).await?;
            println!("migrations applied");
            Ok(())
        }
        Cmd::Org(cmd) => org(config, cmd).await,
        Cmd::ApiKey(cmd) => api_key(config, cmd).await,
        Cmd::Project(cmd) => project(config, cmd).await,
        Cmd::Stripe(cmd) => stripe(config, cmd).await,
        Cmd::Domain(cmd) => domain(config, cmd).await,
    }
}

/// `reauth stripe reconcile`: per project, how many subscriptions Stripe listed (checked) and
/// how many rows were repaired; fails when a project could not be reconciled.
async fn stripe(config: Option<&PathBuf>, cmd: StripeCmd) -> anyhow::Result<()> {
    let StripeCmd::Reconcile {
        project,
        json,
        store,
    } = cmd;
    let s = settings(config, &store)?;
    crate::telemetry::init("warn", s.log_format);
    let key = cli_master_key(&s)?;
    let db = app::open_db(&s).await?;
    // The bus carries repairs to running instances' resident views (Redis); without Redis,
    // embedded instances show them when their views next load from the store.
    let cache = cache::connect(s.redis_url.as_ref().map(|u| u.expose()), &s.redis_prefix)
        .await
        .context("connecting to Redis")?;
    let svc = Arc::new(Services::new(db.clone(), cache, s.clone(), key, false)?);
    let reports = reconcile::reconcile_cli(&svc, project.as_deref()).await;
    db.pool.close().await;
    let reports = reports?;
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            match &r.error {
                None => println!(
                    "{}\tchecked {}\trepaired {}",
                    r.project, r.checked, r.repaired
                ),
                Some(e) => println!("{}\tfailed: {e}", r.project),
            }
        }
    }
    let failed = reports.iter().filter(|r| r.error.is_some()).count();
    if failed > 0 {
        anyhow::bail!("{failed} project(s) could not be reconciled");
    }
    Ok(())
}

/// `dev` serves every sign-in link at `/dev/outbox`: on a reachable address that is an open
/// door, so it takes an explicit `--allow-remote`.
fn check_dev_listen(s: &Settings, allow_remote: bool) -> anyhow::Result<()> {
    let exposed = |a: &std::net::SocketAddr| !a.ip().is_loopback();
    if allow_remote {
        return Ok(());
    }
    if exposed(&s.listen) {
        anyhow::bail!(
            "`reauth dev` refuses to listen on {}: its dev outbox (/dev/outbox) shows every sign-in link, so anyone who reaches it can sign in as anyone. Listen on 127.0.0.1, use `reauth serve` for a reachable instance, or pass --allow-remote if you really mean it",
            s.listen
        );
    }
    if let Some(o) = s.ops_listen.as_ref().filter(|a| exposed(a)) {
        anyhow::bail!(
            "`reauth dev` refuses to serve /metrics and /ops on {o} (not loopback); pass --allow-remote if you really mean it"
        );
    }
    Ok(())
}

/// One warning per `REAUTH_*` variable that names no setting (a typo is otherwise silent).
/// On stderr, before logging is set up, so every command says it.
fn warn_unknown_env(s: &Settings) {
    for (name, hint) in &s.unknown_env {
        match hint {
            Some(h) => eprintln!(
                "warning: {name} is not a reauth setting and is ignored; did you mean {h}?"
            ),
            None => eprintln!(
                "warning: {name} is not a reauth setting and is ignored (see the README's configuration table)"
            ),
        }
    }
}

async fn serve(s: Settings, mode: Mode) -> anyhow::Result<()> {
    crate::telemetry::init(&s.log_level, s.log_format);
    let handle = app::start(s.clone(), mode).await?;
    let addr = handle.addr;
    let ops = handle
        .ops_addr
        .map_or_else(|| "off".to_string(), |a| a.to_string());
    tracing::info!(%addr, %ops, ?mode, database = if s.database_url.is_some() { "configured" } else { "embedded sqlite" }, cache = handle.state.core.svc.cache.kind(), "reauth listening");
    if mode == Mode::Dev {
        let port = addr.port();
        let owner = crate::dashboard::prepare_dev(&handle.state).await?;
        eprintln!("\n  reauth dev is running\n");
        eprintln!("  Dashboard:    http://localhost:{port}/dashboard  (sign in as {owner})");
        eprintln!("  Sign in:      http://localhost:{port}/login");
        eprintln!("  Dev outbox:   http://localhost:{port}/dev/outbox");
        eprintln!("  Current user: http://localhost:{port}/v1/user");
        match handle.ops_addr {
            Some(o) => eprintln!("  Metrics:      http://{o}/metrics\n"),
            None => eprintln!(),
        }
    }
    handle.run_until(app::shutdown_signal()).await
}

/// The key that seals secrets: required with a configured database; the dev key otherwise.
fn cli_master_key(s: &Settings) -> anyhow::Result<MasterKey> {
    if let Some(k) = &s.master_key {
        return MasterKey::from_base64(k.expose()).context("REAUTH_MASTER_KEY");
    }
    if s.database_url.is_some() {
        anyhow::bail!("REAUTH_MASTER_KEY is required to manage projects in a configured database");
    }
    let path = s.data_dir.join("master.key");
    if let Ok(k) = std::fs::read_to_string(&path) {
        return MasterKey::from_base64(&k).with_context(|| format!("reading {}", path.display()));
    }
    std::fs::create_dir_all(&s.data_dir)?;
    let (key, b64) = MasterKey::generate();
    std::fs::write(&path, b64)?;
    Ok(key)
}

/// The façade over the configured store, for one command: changes reach running instances
/// over the bus (Redis) or each instance's version watcher (embedded store).
async fn admin_for(s: &Settings) -> anyhow::Result<Admin> {
    let key = cli_master_key(s)?;
    let db = app::open_db(s).await?;
    let cache = cache::connect(s.redis_url.as_ref().map(|u| u.expose()), &s.redis_prefix)
        .await
        .context("connecting to Redis")?;
    Ok(Admin::detached(Arc::new(Services::new(
        db,
        cache,
        s.clone(),
        key,
        false,
    )?)))
}

/// A façade error as the CLI says it: the field for bad input.
fn cli_error(e: AdminError) -> anyhow::Error {
    match e {
        AdminError::Invalid { field, message } => {
            anyhow::anyhow!("--{}: {message}", field.replace('_', "-"))
        }
        AdminError::Store(e) => e,
        other => anyhow::anyhow!("{other}"),
    }
}

async fn org_caller(admin: &Admin, slug: &str) -> anyhow::Result<Caller> {
    let org = admin
        .org_by_slug(slug)
        .await
        .map_err(cli_error)?
        .with_context(|| format!("no organization {slug:?}"))?;
    Ok(Caller::operator(Some(&org.id)))
}

fn print_domain(d: &reauth_actors::admin::projects::Domain) {
    let reason = d.reason.as_deref().unwrap_or("");
    println!("{}\t{}\t{}\t{reason}", d.hostname, d.id, d.status);
}

fn show_domain(d: &reauth_actors::admin::projects::Domain, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(d)?);
    } else {
        print_domain(d);
    }
    Ok(())
}

async fn domain(config: Option<&PathBuf>, cmd: DomainCmd) -> anyhow::Result<()> {
    let (flags, slug, json) = match &cmd {
        DomainCmd::Add {
            store,
            project,
            json,
            ..
        }
        | DomainCmd::List {
            store,
            project,
            json,
        }
        | DomainCmd::Verify {
            store,
            project,
            json,
            ..
        }
        | DomainCmd::Primary {
            store,
            project,
            json,
            ..
        }
        | DomainCmd::Remove {
            store,
            project,
            json,
            ..
        } => (store.clone(), project.clone(), *json),
    };
    let s = settings(config, &flags)?;
    crate::telemetry::init("warn", s.log_format);
    let admin = admin_for(&s).await?;
    let operator = Caller::operator(None);
    let p = admin
        .project_by_slug(&operator, &slug)
        .await
        .map_err(|_| anyhow::anyhow!("no project {slug:?}"))?;
    // A domain named by id or by host name (any case, Unicode or punycode).
    let find = |name: String| {
        let admin = admin.clone();
        let operator = operator.clone();
        let pid = p.id.clone();
        async move {
            let host = reauth_actors::domains::normalize(&name);
            admin
                .list_domains(&operator, &pid)
                .await
                .map_err(cli_error)?
                .into_iter()
                .find(|d| d.id == name || Some(&d.hostname) == host.as_ref())
                .with_context(|| format!("no domain {name:?} on project {slug:?}"))
        }
    };
    match cmd {
        DomainCmd::Add { hostname, .. } => {
            let d = admin
                .add_domain(&operator, &p.id, &hostname)
                .await
                .map_err(cli_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                print_domain(&d);
                println!("Create these DNS records, then run `reauth domain verify`:");
                for r in &d.records {
                    println!("  {}\t{}\t{}", r.kind, r.name, r.value);
                }
                println!("Google redirect URI: {}", d.google_redirect_uri);
            }
        }
        DomainCmd::List { .. } => {
            let list = admin
                .list_domains(&operator, &p.id)
                .await
                .map_err(cli_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                list.iter().for_each(print_domain);
            }
        }
        DomainCmd::Verify { domain, .. } => {
            let d = find(domain).await?;
            let d = admin
                .verify_domain(&operator, &p.id, &d.id)
                .await
                .map_err(cli_error)?;
            show_domain(&d, json)?;
        }
        DomainCmd::Primary { domain, .. } => {
            let d = find(domain).await?;
            let d = admin
                .set_primary_domain(&operator, &p.id, &d.id)
                .await
                .map_err(cli_error)?;
            show_domain(&d, json)?;
        }
        DomainCmd::Remove { domain, .. } => {
            let d = find(domain).await?;
            admin
                .remove_domain(&operator, &p.id, &d.id)
                .await
                .map_err(cli_error)?;
            if json {
                println!("{}", serde_json::json!({ "id": d.id, "removed": true }));
            } else {
                println!("removed {}", d.hostname);
            }
        }
    }
    Ok(())
}

async fn org(config: Option<&PathBuf>, cmd: OrgCmd) -> anyhow::Result<()> {
    let flags = match &cmd {
        OrgCmd::Create { store, .. } | OrgCmd::List { store, .. } => store.clone(),
    };
    let s = settings(config, &flags)?;
    crate::telemetry::init("warn", s.log_format);
    let admin = admin_for(&s).await?;
    match cmd {
        OrgCmd::Create {
            slug,
            name,
            owner_email,
            json,
            ..
        } => {
            let name = name.unwrap_or_else(|| slug.clone());
            let org = admin
                .create_org("cli", &slug, &name, &owner_email)
                .await
                .map_err(cli_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&org)?);
            } else {
                println!("{}\t{}\t{}", org.slug, org.id, org.name);
            }
        }
        OrgCmd::List { json, .. } => {
            let list = admin.list_orgs().await.map_err(cli_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for o in &list {
                    println!("{}\t{}\t{}", o.slug, o.id, o.name);
                }
            }
        }
    }
    Ok(())
}

async fn api_key(config: Option<&PathBuf>, cmd: ApiKeyCmd) -> anyhow::Result<()> {
    let flags = match &cmd {
        ApiKeyCmd::Create { store, .. }
        | ApiKeyCmd::List { store, .. }
        | ApiKeyCmd::Revoke { store, .. } => store.clone(),
    };
    let s = settings(config, &flags)?;
    crate::telemetry::init("warn", s.log_format);
    let admin = admin_for(&s).await?;
    match cmd {
        ApiKeyCmd::Create {
            org,
            name,
            scopes,
            json,
            ..
        } => {
            let caller = org_caller(&admin, &org).await?;
            let (k, secret) = admin
                .create_api_key(&caller, name.as_deref().unwrap_or_default(), &scopes)
                .await
                .map_err(cli_error)?;
            if json {
                let mut v = serde_json::to_value(&k)?;
                v["key"] = secret.into();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{secret}");
                eprintln!(
                    "{} ({}): shown once; store it now",
                    k.id,
                    k.scopes.join(" ")
                );
            }
        }
        ApiKeyCmd::List { org, json, .. } => {
            let caller = org_caller(&admin, &org).await?;
            let list = admin.list_api_keys(&caller).await.map_err(cli_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for k in &list {
                    let state = if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{}\t{}…\t{}\t{}\t{}",
                        k.id,
                        k.prefix,
                        k.name,
                        k.scopes.join(" "),
                        state
                    );
                }
            }
        }
        ApiKeyCmd::Revoke {
            org, key_id, json, ..
        } => {
            let caller = org_caller(&admin, &org).await?;
            let k = admin
                .revoke_api_key(&caller, &key_id)
                .await
                .map_err(cli_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&k)?);
            } else {
                println!("revoked {}", k.id);
            }
        }
    }
    Ok(())
}

async fn project(config: Option<&PathBuf>, cmd: ProjectCmd) -> anyhow::Result<()> {
    let flags = match &cmd {
        ProjectCmd::Create { store, .. }
        | ProjectCmd::List { store, .. }
        | ProjectCmd::Show { store, .. } => store.clone(),
        ProjectCmd::Update(a) => a.store.clone(),
    };
    let s = settings(config, &flags)?;
    crate::telemetry::init("warn", s.log_format);
    let admin = admin_for(&s).await?;
    let operator = Caller::operator(None);
    match cmd {
        ProjectCmd::Create {
            slug,
            name,
            org,
            allowed_origins,
            json,
            ..
        } => {
            let caller = match &org {
                Some(o) => org_caller(&admin, o).await?,
                None => operator.clone(),
            };
            let new = NewProject {
                slug: slug.clone(),
                name,
                allowed_origins,
            };
            let v = admin
                .create_project(&caller, &new)
                .await
                .map_err(cli_error)?;
            let p = admin
                .project_of(&operator, &v.id)
                .await
                .map_err(cli_error)?;
            print_project(&p, &s, json);
        }
        ProjectCmd::List { json, .. } => {
            let list = admin.projects(&operator).await.map_err(cli_error)?;
            if json {
                let v: Vec<_> = list.iter().map(|p| project_json(p, &s)).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for p in &list {
                    println!("{}\t{}\t{}", p.slug, p.id, p.name);
                }
            }
        }
        ProjectCmd::Show { slug, json, .. } => {
            let p = admin
                .project_by_slug(&operator, &slug)
                .await
                .map_err(|_| anyhow::anyhow!("no project {slug:?}"))?;
            print_project(&p, &s, json);
        }
        ProjectCmd::Update(a) => {
            let p = admin
                .project_by_slug(&operator, &a.slug)
                .await
                .map_err(|_| anyhow::anyhow!("no project {:?}", a.slug))?;
            let (mut update, creds) = update_from(&a)?;
            if !a.add_allowed_origins.is_empty() || !a.remove_allowed_origins.is_empty() {
                let mut list = update
                    .allowed_origins
                    .clone()
                    .unwrap_or_else(|| p.allowed_origins.clone());
                for o in &a.add_allowed_origins {
                    if !list.contains(o) {
                        list.push(o.clone());
                    }
                }
                for o in &a.remove_allowed_origins {
                    if !list.contains(o) {
                        anyhow::bail!(
                            "--remove-allowed-origin {o:?}: not an allowed origin of {:?} (it has {})",
                            a.slug,
                            list.join(", ")
                        );
                    }
                    list.retain(|x| x != o);
                }
                update.allowed_origins = Some(list);
            }
            admin
                .update_project(&operator, &p.id, &update)
                .await
                .map_err(cli_error)?;
            if creds.is_some() {
                admin
                    .put_credentials(&operator, &p.id, &creds.unwrap_or_default())
                    .await
                    .map_err(cli_error)?;
            }
            let p = admin
                .project_of(&operator, &p.id)
                .await
                .map_err(cli_error)?;
            print_project(&p, &s, a.json);
        }
    }
    admin.svc().db.pool.close().await;
    Ok(())
}

/// Empty string clears an optional setting.
fn opt(v: &Option<String>) -> Option<Option<String>> {
    v.as_ref().map(|s| (!s.is_empty()).then(|| s.clone()))
}

pub fn parse_plan(s: &str) -> anyhow::Result<PlanMapping> {
    let (price, rest) = s
        .split_once('=')
        .with_context(|| format!("--plan {s:?}: expected PRICE_ID=PLAN[:feature,feature]"))?;
    let (plan, features) = rest.split_once(':').unwrap_or((rest, ""));
    if price.trim().is_empty() || plan.trim().is_empty() {
        anyhow::bail!("--plan {s:?}: price id and plan name are required");
    }
    Ok(PlanMapping {
        price_id: price.trim().into(),
        plan: plan.trim().into(),
        features: features
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(String::from)
            .collect(),
    })
}

/// The flags of `project update` as the façade's update and credentials (it validates them).
fn update_from(a: &UpdateArgs) -> anyhow::Result<(ProjectUpdate, Option<Credentials>)> {
    let plans = if a.plans.is_empty() {
        None
    } else {
        Some(
            a.plans
                .iter()
                .map(|p| parse_plan(p))
                .collect::<anyhow::Result<Vec<_>>>()?,
        )
    };
    let update = ProjectUpdate {
        name: a.name.clone(),
        logo_url: opt(&a.logo_url),
        accent_color: opt(&a.accent_color),
        allowed_origins: (!a.allowed_origins.is_empty()).then(|| a.allowed_origins.clone()),
        dev_hosts: (!a.dev_hosts.is_empty()).then(|| a.dev_hosts.clone()),
        email_from: None,
        google_client_id: None,
        magic_link_ttl_secs: a.magic_link_ttl,
        session_ttl_secs: a.session_ttl,
        plans,
    };
    let creds = Credentials {
        google_client_id: opt(&a.google_client_id),
        google_client_secret: opt(&a.google_client_secret),
        resend_api_key: opt(&a.resend_api_key),
        email_from: opt(&a.email_from),
        stripe_secret_key: opt(&a.stripe_secret_key),
        stripe_webhook_secret: opt(&a.stripe_webhook_secret),
    };
    let any = creds.google_client_id.is_some()
        || creds.google_client_secret.is_some()
        || creds.resend_api_key.is_some()
        || creds.email_from.is_some()
        || creds.stripe_secret_key.is_some()
        || creds.stripe_webhook_secret.is_some();
    Ok((update, any.then_some(creds)))
}

fn project_json(p: &Project, s: &Settings) -> serde_json::Value {
    let mut hosts = p.dev_hosts.clone();
    if let Some(b) = &s.base_domain {
        hosts.push(format!("{}.{b}", p.slug));
    }
    serde_json::json!({
        "id": p.id,
        "slug": p.slug,
        "name": p.name,
        "hosts": hosts,
        "custom_domain": p.custom_domain,
        "allowed_origins": p.allowed_origins,
        "logo_url": p.logo_url,
        "accent_color": p.accent_color,
        "email_from": p.email_from,
        "resend_api_key_set": p.resend_api_key.is_some(),
        "google_client_id": p.google_client_id,
        "google_client_secret_set": p.google_client_secret.is_some(),
        "stripe_secret_key_set": p.stripe_secret_key.is_some(),
        "stripe_webhook_secret_set": p.stripe_webhook_secret.is_some(),
        "magic_link_ttl_secs": p.magic_link_ttl_secs,
        "session_ttl_secs": p.session_ttl_secs,
        "plans": p.plans,
        "version": p.version,
    })
}

fn print_project(p: &Project, s: &Settings, json: bool) {
    let v = project_json(p, s);
    if json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if let Some(map) = v.as_object() {
        for (k, val) in map {
            println!("{k:<26} {val}");
        }
    }
}
