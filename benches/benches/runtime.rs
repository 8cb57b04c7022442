//! Runtime benchmark: the registry hot path (lookup of a live actor + one request/reply round
//! trip, from inside a tokio worker as a request handler would call it) against a bare DashMap
//! lookup in the same run; and the memory of 100,000 idle resident actors, then passivation.
//!
//! `cargo bench -p reauth-benches --bench runtime` -> benches/results/runtime.md

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use reauth_benches::{pct, rss_bytes, us, write_results};
use reauth_runtime::registry::Registry;

const N_ACTORS: usize = 100_000;
const ITERS: usize = 200_000;

enum Msg {
    Get(RpcReplyPort<u64>),
}

/// A stand-in for a session actor: 64 bytes of state, answers a request with a value.
struct Toy;

impl Actor for Toy {
    type Msg = Msg;
    type State = [u64; 8];
    type Arguments = u64;
    async fn pre_start(&self, _: ActorRef<Msg>, seed: u64) -> Result<[u64; 8], ActorProcessingErr> {
        Ok([seed; 8])
    }
    async fn handle(
        &self,
        _: ActorRef<Msg>,
        m: Msg,
        s: &mut [u64; 8],
    ) -> Result<(), ActorProcessingErr> {
        match m {
            Msg::Get(reply) => {
                s[1] += 1;
                let _ = reply.send(s[0]);
            }
        }
        Ok(())
    }
}

fn key(i: usize) -> Arc<str> {
    Arc::from(format!("usr_{i:032x}").as_str())
}

async fn time_calls(reg: Registry<Arc<str>, Msg>, keys: Vec<Arc<str>>) -> Vec<Duration> {
    let mut out = Vec::with_capacity(ITERS);
    for i in 0..ITERS {
        let k = &keys[i % keys.len()];
        let t = Instant::now();
        let a = reg.get(k).expect("resident");
        let v = ractor::call!(a, Msg::Get).expect("reply");
        out.push(t.elapsed());
        std::hint::black_box(v);
    }
    out.sort();
    out
}

async fn time_map(
    map: Arc<DashMap<Arc<str>, Arc<[u64; 8]>>>,
    keys: Vec<Arc<str>>,
) -> Vec<Duration> {
    let mut out = Vec::with_capacity(ITERS);
    for i in 0..ITERS {
        let k = &keys[i % keys.len()];
        let t = Instant::now();
        let v = map.get(k).map(|e| e.value().clone()).expect("present");
        out.push(t.elapsed());
        std::hint::black_box(v);
    }
    out.sort();
    out
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let mut body = String::new();

    // ---- memory of 100k idle resident actors
    let reg: Registry<Arc<str>, Msg> =
        Registry::start("bench", Some(Duration::from_secs(3600)), None).await?;
    let keys: Vec<Arc<str>> = (0..N_ACTORS).map(key).collect();
    let map: Arc<DashMap<Arc<str>, Arc<[u64; 8]>>> = Arc::new(DashMap::new());
    for (i, k) in keys.iter().enumerate() {
        map.insert(k.clone(), Arc::new([i as u64; 8]));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_bytes();
    let t = Instant::now();
    for chunk in keys.chunks(1000) {
        let mut tasks = Vec::new();
        for (j, k) in chunk.iter().enumerate() {
            let reg = reg.clone();
            let k = k.clone();
            tasks.push(tokio::spawn(async move {
                reg.get_or_spawn(&k, || (Toy, j as u64)).await.map(|_| ())
            }));
        }
        for t in tasks {
            t.await??;
        }
    }
    let spawn_time = t.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_bytes();
    let per_actor = (after.saturating_sub(before)) as f64 / N_ACTORS as f64;
    anyhow::ensure!(reg.len() == N_ACTORS, "all actors resident");

    // ---- hot path: one hot actor, and spread over the 100k resident actors
    let one = vec![keys[0].clone()];
    let hot = tokio::spawn(time_calls(reg.clone(), one.clone())).await?;
    let hot_map = tokio::spawn(time_map(map.clone(), one)).await?;
    let mut spread_keys = keys.clone();
    // Visit actors in a scattered order so each call hits a different, cold actor.
    spread_keys.sort_by_key(|k| (k.as_bytes()[k.len() - 1], k.as_bytes()[k.len() - 2]));
    let spread = tokio::spawn(time_calls(reg.clone(), spread_keys.clone())).await?;
    let spread_map = tokio::spawn(time_map(map.clone(), spread_keys)).await?;

    body.push_str("## Registry hot path (lookup + request/reply), from inside a tokio worker\n\n");
    body.push_str(&format!(
        "{ITERS} sequential operations per row, 2 tokio worker threads, release build.\n\n"
    ));
    body.push_str(
        "| Operation | p50 | p90 | p99 | p50 vs. bare DashMap |\n|---|---|---|---|---|\n",
    );
    for (name, rows, base) in [
        (
            "bare DashMap lookup, one key (baseline)",
            &hot_map,
            &hot_map,
        ),
        ("registry lookup + call, one hot actor", &hot, &hot_map),
        (
            "bare DashMap lookup, 100k keys (baseline)",
            &spread_map,
            &spread_map,
        ),
        (
            "registry lookup + call, across 100k resident actors",
            &spread,
            &spread_map,
        ),
    ] {
        body.push_str(&format!(
            "| {name} | {} | {} | {} | {:.1}x |\n",
            us(pct(rows, 50.0)),
            us(pct(rows, 90.0)),
            us(pct(rows, 99.0)),
            pct(rows, 50.0).as_secs_f64() / pct(base, 50.0).as_secs_f64().max(1e-9)
        ));
    }
    body.push_str("\nTarget: the round trip within 10 µs at the median.\n\n");

    body.push_str("## Memory of idle resident actors\n\n");
    body.push_str("| Measure | Value |\n|---|---|\n");
    body.push_str(&format!(
        "| actors started through the registry | {N_ACTORS} |\n"
    ));
    body.push_str(&format!(
        "| time to start them (1,000 concurrent activations at a time) | {:.2} s |\n",
        spawn_time.as_secs_f64()
    ));
    body.push_str(&format!(
        "| RSS before / after | {:.1} MiB / {:.1} MiB |\n",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    ));
    body.push_str(&format!("| **per resident idle actor** (incl. 64-byte state, key and registry entry) | **{:.2} KiB** |\n", per_actor / 1024.0));

    // ---- passivation: resident count drops to zero, entries are freed
    let reg2: Registry<Arc<str>, Msg> =
        Registry::start("bench_passivate", Some(Duration::from_millis(200)), None).await?;
    for k in keys.iter().take(10_000) {
        reg2.get_or_spawn(k, || (Toy, 1)).await?;
    }
    let t = Instant::now();
    while !reg2.is_empty() && t.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    body.push_str(&format!(
        "| 10,000 actors idle past a 200 ms passivation timeout: resident afterwards | {} (registry entries left: {}) in {:.2} s |\n",
        reg2.len(),
        reg2.keys().len(),
        t.elapsed().as_secs_f64()
    ));
    body.push_str(
        "\nTarget: at most 8 KiB per resident idle actor; passivated keys cost nothing.\n",
    );
    reg.shutdown(Duration::from_secs(30)).await;
    write_results(
        "runtime",
        "Runtime benchmark: registry hot path and actor memory",
        "cargo bench -p reauth-benches --bench runtime",
        &body,
    )?;
    Ok(())
}
