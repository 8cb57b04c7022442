//! The on-demand TLS `ask` endpoint at 10,000 verified custom domains (100 projects of 100
//! domains each, on PostgreSQL): p50/p99 of sequential requests over one keep-alive connection
//! for verified, `<slug>.<base>` and unknown names, wrk throughput, and the in-memory check
//! alone. `ask` must answer from the directory; nothing here touches the database.
//!
//! `cargo bench -p reauth-benches --bench domains` -> benches/results/domains.md (needs wrk,
//! PostgreSQL, Redis)

use std::time::{Duration, Instant};

use reauth_benches::{ms, pct, script, us, write_results, wrk};
use reauth_http::Mode;
use reauth_runtime::now_ms;

const PROJECTS: usize = 100;
const PER_PROJECT: usize = 100;
const SAMPLES: usize = 3_000;

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn sample(
    http: &reqwest::Client,
    url: impl Fn(usize) -> String,
    want: u16,
) -> anyhow::Result<Vec<Duration>> {
    let mut v = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let u = url(i);
        let t = Instant::now();
        let r = http.get(&u).send().await?;
        let status = r.status().as_u16();
        r.bytes().await?;
        v.push(t.elapsed());
        anyhow::ensure!(status == want, "{u}: {status}, expected {want}");
    }
    v.sort();
    Ok(v)
}

async fn run() -> anyhow::Result<()> {
    let s = reauth_benches::production_settings("reauth_bench_domains_").await?;
    let app = reauth_http::start(s, Mode::Serve).await?;
    let core = app.state.core.clone();
    let db = &core.svc.db;
    let ops = app
        .ops_addr
        .ok_or_else(|| anyhow::anyhow!("no ops listener"))?;

    let t = Instant::now();
    let now = now_ms();
    let mut slugs = vec![];
    for p in 0..PROJECTS {
        let slug = format!("p{p:03}");
        let id = reauth_actors::store::create_project(db, &slug, &slug, &[], &[], now).await?;
        for d in 0..PER_PROJECT {
            sqlx::query("INSERT INTO domains (id, project_id, hostname, is_primary, status, token, verified_at, checked_at, created_at) VALUES ($1, $2, $3, $4, 'verified', 't', $5, $5, $5)")
                .bind(format!("dom_{p:03}_{d:03}"))
                .bind(&id)
                .bind(format!("auth{d}.customer{p}.example.com"))
                .bind(i64::from(d == 0))
                .bind(now)
                .execute(&db.pool)
                .await?;
        }
        core.project_changed(&id).await?;
        slugs.push(slug);
    }
    let load = t.elapsed();
    let probe = format!(
        "auth{}.customer{}.example.com",
        PER_PROJECT - 1,
        PROJECTS - 1
    );
    anyhow::ensure!(
        core.directory.tls_allowed(&probe, Some("bench.local")),
        "domains not loaded"
    );

    let http = reqwest::Client::new();
    let base = format!("http://{ops}/ops/tls/ask?domain=");
    let verified = sample(
        &http,
        |i| {
            format!(
                "{base}auth{}.customer{}.example.com",
                i % PER_PROJECT,
                (i / PER_PROJECT) % PROJECTS
            )
        },
        200,
    )
    .await?;
    let slug_hosts = sample(
        &http,
        |i| format!("{base}{}.bench.local", slugs[i % PROJECTS]),
        200,
    )
    .await?;
    let unknown = sample(&http, |i| format!("{base}nope{i}.example.org"), 404).await?;

    // The check alone, as the handler calls it.
    let names: Vec<String> = (0..10_000)
        .map(|i| {
            if i % 2 == 0 {
                format!(
                    "auth{}.customer{}.example.com",
                    i % PER_PROJECT,
                    i % PROJECTS
                )
            } else {
                format!("nope{i}.example.org")
            }
        })
        .collect();
    let t = Instant::now();
    let mut yes = 0;
    for n in &names {
        yes += usize::from(core.directory.tls_allowed(n, Some("bench.local")));
    }
    let per_check = t.elapsed() / names.len() as u32;
    anyhow::ensure!(yes == names.len() / 2, "{yes} allowed");

    let w_ok = wrk(
        &format!("{base}auth7.customer42.example.com"),
        32,
        5,
        &script(&[], None),
    )?;
    let w_no = wrk(
        &format!("{base}unknown.example.org"),
        32,
        5,
        &script(&[], None),
    )?;

    let row = |name: &str, v: &[Duration]| {
        format!(
            "| {name} | {} | {} | {} | {} |\n",
            v.len(),
            ms(pct(v, 50.0)),
            ms(pct(v, 99.0)),
            ms(v.last().copied().unwrap_or_default())
        )
    };
    let mut body = format!(
        "One reauth instance (2 tokio workers) on PostgreSQL + Redis on the same machine; {} verified custom domains ({PROJECTS} projects x {PER_PROJECT}; loaded and published in {:.1} s). `GET /ops/tls/ask?domain=…` on the ops listener, sequential over one keep-alive connection.\n\n| Name asked | Samples | p50 | p99 | max |\n|---|---|---|---|---|\n",
        PROJECTS * PER_PROJECT,
        load.as_secs_f64()
    );
    body.push_str(&row("a verified custom domain (200)", &verified));
    body.push_str(&row("`<slug>.<base domain>` (200)", &slug_hosts));
    body.push_str(&row("an unknown name (404)", &unknown));
    body.push_str(&format!(
        "\n| Measure | Result |\n|---|---|\n| `Directory::tls_allowed` alone (half hits), per call | {} |\n| wrk 32 connections, a verified name | {:.0} req/s, p99 {} |\n| wrk 32 connections, an unknown name | {:.0} req/s, p99 {} |\n",
        us(per_check),
        w_ok.rps,
        ms(w_ok.p99),
        w_no.rps,
        ms(w_no.p99),
    ));
    write_results(
        "domains",
        "On-demand TLS ask at 10,000 verified custom domains",
        "cargo bench -p reauth-benches --bench domains",
        &body,
    )?;
    Ok(())
}
