//! An open-loop HTTP/1.1 load generator: `--rate` requests per second at evenly spaced send
//! times, spread over `--conns` keep-alive connections, each latency measured from the request's
//! *scheduled* send time — a slow answer also delays the requests queued behind it, and that
//! wait is counted (no coordinated omission), as wrk2 measures. wrk paces connections with
//! millisecond timers, so its "half load" arrives in bursts at every tick; this sends at the
//! rate it is given. It waits for send times by yielding in a loop (its core is its own, as
//! wrk's is), so its own wake-ups add nothing to what it measures.
//!
//! `openloop --addr 127.0.0.1:8080 --path /v1/user --header 'Host: x' --rate 50000 --conns 64
//! --secs 5` prints `RESULT <req/s> <p50 µs> <p90 µs> <p99 µs> <errors>` like the wrk script.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    addr: SocketAddr,
    request: Vec<u8>,
    rate: f64,
    conns: u64,
    secs: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut addr = None;
    let mut path = "/".to_string();
    let mut headers = Vec::new();
    let (mut rate, mut conns, mut secs) = (1000.0, 16, 5);
    let mut it = std::env::args();
    let _program = it.next();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => addr = Some(value.parse()?),
            "--path" => path = value,
            "--header" => headers.push(value),
            "--rate" => rate = value.parse()?,
            "--conns" => conns = value.parse()?,
            "--secs" => secs = value.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    for h in &headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    anyhow::ensure!(rate > 0.0 && conns > 0 && secs > 0, "rate, conns, secs > 0");
    Ok(Args {
        addr: addr.ok_or_else(|| anyhow::anyhow!("--addr is required"))?,
        request: request.into_bytes(),
        rate,
        conns,
        secs,
    })
}

/// Wait until `due`: sleep while it is far, then yield (each yield lets the runtime poll its
/// sockets, so waiting connections never delay answers to the others).
async fn wait_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        if due - now > Duration::from_millis(3) {
            tokio::time::sleep(due - now - Duration::from_millis(2)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

/// Read one response (headers + `Content-Length` body) into `buf`; returns its status.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end])?;
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("bad status line"))?;
            let len: usize = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .ok_or_else(|| anyhow::anyhow!("no content-length"))?;
            while buf.len() < end + 4 + len {
                let n = stream.read(&mut chunk).await?;
                anyhow::ensure!(n > 0, "connection closed mid-body");
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Connection `k` sends requests `k, k + conns, k + 2·conns, …` of the schedule.
async fn connection(
    k: u64,
    a: std::sync::Arc<Args>,
    start: Instant,
    total: u64,
) -> (Vec<Duration>, u64, Instant) {
    let mut lat = Vec::with_capacity((total / a.conns + 1) as usize);
    let mut errors = 0;
    let mut last = start;
    let Ok(mut stream) = TcpStream::connect(a.addr).await else {
        return (lat, total / a.conns, last);
    };
    let mut buf = Vec::with_capacity(4096);
    let mut i = k;
    while i < total {
        let due = start + Duration::from_secs_f64(i as f64 / a.rate);
        wait_until(due).await;
        let ok = match stream.write_all(&a.request).await {
            Ok(()) => matches!(read_response(&mut stream, &mut buf).await, Ok(200)),
            Err(_) => false,
        };
        last = Instant::now();
        if ok {
            lat.push(last - due);
        } else {
            errors += 1;
            match TcpStream::connect(a.addr).await {
                Ok(s) => stream = s,
                Err(_) => return (lat, errors + (total - i) / a.conns, last),
            }
        }
        i += a.conns;
    }
    (lat, errors, last)
}

fn main() -> anyhow::Result<()> {
    let a = std::sync::Arc::new(args()?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let total = (a.rate * a.secs as f64) as u64;
        // Connect first, then start the schedule.
        let start = Instant::now() + Duration::from_millis(100);
        let tasks: Vec<_> = (0..a.conns)
            .map(|k| tokio::spawn(connection(k, a.clone(), start, total)))
            .collect();
        let mut lat = Vec::with_capacity(total as usize);
        let mut errors = 0;
        let mut end = start;
        for t in tasks {
            let (l, e, last) = t.await?;
            lat.extend(l);
            errors += e;
            end = end.max(last);
        }
        lat.sort();
        let secs = (end - start).as_secs_f64().max(1e-9);
        let p = |q: f64| reauth_benches::pct(&lat, q).as_secs_f64() * 1e6;
        println!(
            "RESULT {:.1} {:.1} {:.1} {:.1} {errors}",
            lat.len() as f64 / secs,
            p(50.0),
            p(90.0),
            p(99.0)
        );
        Ok(())
    })
}
