//! Shared pieces of the benchmarks: percentiles, machine description, the wrk runner, and
//! writing results as markdown tables under `benches/results/`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Percentile (0..=100) of a sorted slice.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// One line describing the machine: CPU model, cores, memory, kernel.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    // Counted from /proc/cpuinfo: a pinned process sees only its own core.
    let cores = std::fs::read_to_string("/proc/cpuinfo").map_or(0, |s| {
        s.lines().filter(|l| l.starts_with("processor")).count()
    });
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or("?".into(), |kb| format!("{} GiB", kb / 1024 / 1024));
    format!("{cpu}, {cores} cores, {mem} RAM{}", idle_poll())
}

/// How an idle vCPU waits, when the guest says (`haltpoll` with `guest_halt_poll_ns` 0 means
/// every idle core halts to the hypervisor and needs an IPI to wake: tens of µs per wake-up).
fn idle_poll() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    match (
        read("/sys/devices/system/cpu/cpuidle/current_driver"),
        read("/sys/module/haltpoll/parameters/guest_halt_poll_ns"),
    ) {
        (Some(d), Some(ns)) => format!(", cpuidle {d} (guest_halt_poll_ns {ns})"),
        (Some(d), None) => format!(", cpuidle {d}"),
        _ => String::new(),
    }
}

/// Resident set size of this process, bytes.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// Write `body` to `benches/results/<name>.md` with a header naming the machine and command.
pub fn write_results(
    name: &str,
    title: &str,
    command: &str,
    body: &str,
) -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.md"));
    let text = format!(
        "# {title}\n\n- Date: {}\n- Machine: {}\n- Command: `{command}`\n\n{body}\n",
        chrono_now(),
        machine()
    );
    std::fs::write(&path, text)?;
    println!("{body}");
    println!("results written to {}", path.display());
    Ok(path)
}

fn chrono_now() -> String {
    Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "?".into(), |s| s.trim().to_string())
}

#[derive(Debug, Clone, Default)]
pub struct WrkResult {
    pub rps: f64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub errors: u64,
}

/// Run wrk (must be on PATH) with a Lua script that prints a machine-readable summary; on
/// core 1 when the server pinned itself to core 0 (see `pin_to_core0`).
pub fn wrk(url: &str, conns: u32, secs: u32, script: &str) -> anyhow::Result<WrkResult> {
    wrk_on(1, url, conns, secs, script)
}

/// [`wrk`] pinned to `core` (when the server is pinned): core 0 puts the client on the
/// server's core, so no request or response waits for the other vCPU to wake.
pub fn wrk_on(
    core: u32,
    url: &str,
    conns: u32,
    secs: u32,
    script: &str,
) -> anyhow::Result<WrkResult> {
    let path = std::env::temp_dir().join(format!("reauth-wrk-{}.lua", std::process::id()));
    std::fs::write(&path, format!("{script}\n{DONE_LUA}"))?;
    let out = on_core(core, "wrk")
        .args([
            "-t1",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--timeout",
            "5s",
            "-s",
        ])
        .arg(&path)
        .arg(url)
        .output()
        .map_err(|e| anyhow::anyhow!("running wrk (install it: apt-get install wrk): {e}"))?;
    parse_result(&String::from_utf8_lossy(&out.stdout))
}

/// The `RESULT <req/s> <p50 µs> <p90 µs> <p99 µs> <errors>` line the wrk script and the
/// `openloop` client print.
pub fn parse_result(text: &str) -> anyhow::Result<WrkResult> {
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .ok_or_else(|| anyhow::anyhow!("load tool printed no result: {text}"))?;
    let f: Vec<f64> = line[7..]
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    anyhow::ensure!(f.len() == 5, "unexpected result line {line}");
    let d = |us: f64| Duration::from_nanos((us * 1000.0) as u64);
    Ok(WrkResult {
        rps: f[0],
        p50: d(f[1]),
        p90: d(f[2]),
        p99: d(f[3]),
        errors: f[4] as u64,
    })
}

/// `program`, pinned to `core` when the server pinned itself (see `pin_to_core0`).
fn on_core(core: u32, program: &str) -> Command {
    if pinned() {
        let mut c = Command::new("taskset");
        c.args(["-c", &core.to_string(), program]);
        c
    } else {
        Command::new(program)
    }
}

/// Run the `openloop` client (its path from the bench: `env!("CARGO_BIN_EXE_openloop")`) on
/// core 1 when the server is pinned: `rate` req/s over `conns` connections for `secs`, sending
/// `headers` (`"Name: value"` lines).
pub fn openloop(
    exe: &str,
    url: &str,
    headers: &[String],
    rate: f64,
    conns: u32,
    secs: u32,
) -> anyhow::Result<WrkResult> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("http:// URL expected: {url}"))?;
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut cmd = on_core(1, exe);
    cmd.args([
        "--addr",
        addr,
        "--path",
        if path.is_empty() { "/" } else { path },
    ]);
    for h in headers {
        cmd.arg("--header").arg(h);
    }
    let out = cmd
        .args(["--rate", &rate.to_string()])
        .args(["--conns", &conns.to_string()])
        .args(["--secs", &secs.to_string()])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "openloop failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_result(&String::from_utf8_lossy(&out.stdout))
}

const DONE_LUA: &str = r#"
done = function(summary, latency, requests)
  local errs = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT %f %f %f %f %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), errs))
end
"#;

/// A wrk script sending `headers` on every request, optionally pacing each connection.
pub fn script(headers: &[(&str, &str)], delay_ms: Option<u32>) -> String {
    let mut s = String::new();
    for (k, v) in headers {
        s.push_str(&format!("wrk.headers[\"{k}\"] = \"{v}\"\n"));
    }
    if let Some(d) = delay_ms {
        s.push_str(&format!("delay = function() return {d} end\n"));
    }
    s
}

static PINNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn pinned() -> bool {
    PINNED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Pin this process (server side) to core 0 so the load tool gets core 1, as in STACK.md's
/// baseline measurements. Call before starting the runtime. Returns whether it worked.
pub fn pin_to_core0() -> bool {
    let pid = std::process::id().to_string();
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", "0", &pid])
        .output()
        .is_ok_and(|o| o.status.success());
    PINNED.store(ok, std::sync::atomic::Ordering::Relaxed);
    ok
}

/// Settings of a production-shaped instance (PostgreSQL + Redis) on a fresh database and Redis
/// prefix, listening on a free loopback port. Instances started with the same settings share
/// the database and the bus.
pub async fn production_settings(prefix: &str) -> anyhow::Result<reauth_runtime::Settings> {
    use reauth_runtime::config::Secret;
    let pg = reauth_runtime::db::testing::fresh_postgres().await?;
    let (_, key) = reauth_runtime::crypto::MasterKey::generate();
    let mut s = reauth_runtime::Settings {
        listen: "127.0.0.1:0".parse()?,
        ..reauth_runtime::Settings::default()
    };
    s.database_url = Some(Secret::new(pg));
    s.redis_url = Some(Secret::new(
        std::env::var("REAUTH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
    ));
    s.redis_prefix = format!("{prefix}{}:", reauth_runtime::now_ms());
    s.master_key = Some(Secret::new(key));
    s.base_domain = Some("bench.local".into());
    s.log_level = "error".into();
    s.session_idle_secs = 3600;
    s.ops_listen = Some("127.0.0.1:0".parse()?);
    Ok(s)
}

/// The project every benchmark serves: slug `bench`, so host `bench.bench.local`.
pub async fn create_project(core: &reauth_actors::Core) -> anyhow::Result<String> {
    reauth_actors::store::create_project(
        &core.svc.db,
        "bench",
        "Bench",
        &[],
        &["https://app.bench.local".into()],
        reauth_runtime::now_ms(),
    )
    .await
}
