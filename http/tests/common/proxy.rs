//! A loopback TCP proxy in front of the machine's Redis, for fault tests. `cut` is a partition:
//! every connection stays open and nothing is forwarded (bytes wait, as TCP holds them), and
//! healing delivers them. `kill` is Redis going away: every connection is reset and new ones are
//! refused until `revive`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct RedisProxy {
    pub url: String,
    cut: Arc<AtomicBool>,
    dead: Arc<AtomicBool>,
    pipes: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl RedisProxy {
    pub async fn start() -> Self {
        let upstream = super::redis_url()
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap_or("127.0.0.1:6379")
            .to_string();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", l.local_addr().unwrap());
        let cut = Arc::new(AtomicBool::new(false));
        let dead = Arc::new(AtomicBool::new(false));
        let pipes: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (c, d, ps) = (cut.clone(), dead.clone(), pipes.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = l.accept().await {
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let mut ps = ps.lock().unwrap();
                ps.push(tokio::spawn(pipe(cr, sw, c.clone())));
                ps.push(tokio::spawn(pipe(sr, cw, c.clone())));
            }
        });
        Self {
            url,
            cut,
            dead,
            pipes,
        }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// Reset every connection and refuse new ones.
    pub fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
        for p in self.pipes.lock().unwrap().drain(..) {
            p.abort();
        }
    }

    pub fn revive(&self) {
        self.dead.store(false, Ordering::SeqCst);
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while cut.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let Ok(n) = from.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        while cut.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
