//! Custom domains against a real DNS server on loopback (an in-process UDP + TCP responder
//! whose records each test controls): verification and its failures in words, a black-hole
//! nameserver, re-verification with the grace period (time passed in), one host per project,
//! IDN host names, routing and magic links on a verified domain, and the on-demand TLS `ask`.

#[macro_use]
mod common;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{BASE_DOMAIN, Backend, Deployment, TestApp, TestProject, eventually, unique};
use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, CNAME, SOA, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use reauth_actors::admin::projects::Domain;
use reauth_actors::admin::{Admin, AdminError, Caller};
use reauth_runtime::{Settings, now_ms};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

const INGRESS: &str = "ingress.reauth-test.net";
const INGRESS_IP: &str = "203.0.113.10";

type Zone = Arc<Mutex<HashMap<(String, RecordType), Vec<RData>>>>;

/// A UDP and a TCP socket on one loopback port number. The kernel picks the UDP port, which
/// may be taken for TCP by another socket — then another is tried.
async fn udp_and_tcp() -> (UdpSocket, TcpListener, SocketAddr) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        match TcpListener::bind(addr).await {
            Ok(tcp) => return (udp, tcp, addr),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => panic!("binding TCP {addr}: {e}"),
        }
    }
    panic!("no port number free for both UDP and TCP in 50 tries")
}

/// An authoritative DNS server for whatever the test puts in its zone, on UDP and TCP.
struct Dns {
    addr: SocketAddr,
    zone: Zone,
}

impl Dns {
    async fn start() -> Self {
        let (udp, tcp, addr) = udp_and_tcp().await;
        let zone: Zone = Arc::default();
        let z = zone.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                if let Some(out) = answer(&z, &buf[..n]) {
                    let _ = udp.send_to(&out, peer).await;
                }
            }
        });
        let z = zone.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp.accept().await {
                let z = z.clone();
                tokio::spawn(async move {
                    loop {
                        let Ok(len) = s.read_u16().await else { return };
                        let mut buf = vec![0u8; len as usize];
                        if s.read_exact(&mut buf).await.is_err() {
                            return;
                        }
                        let Some(out) = answer(&z, &buf) else { return };
                        if s.write_u16(out.len() as u16).await.is_err()
                            || s.write_all(&out).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, zone }
    }

    fn set(&self, name: &str, kind: RecordType, data: Vec<RData>) {
        let mut z = self.zone.lock().unwrap();
        let key = (name.trim_end_matches('.').to_ascii_lowercase(), kind);
        if data.is_empty() {
            z.remove(&key);
        } else {
            z.insert(key, data);
        }
    }

    fn txt(&self, host: &str, value: &str) {
        self.set(
            &format!("_reauth-challenge.{host}"),
            RecordType::TXT,
            vec![RData::TXT(TXT::new(vec![value.to_string()]))],
        );
    }

    fn cname(&self, host: &str, target: &str) {
        self.set(
            host,
            RecordType::CNAME,
            vec![RData::CNAME(CNAME(
                Name::from_ascii(format!("{target}.")).unwrap(),
            ))],
        );
    }

    /// What a customer does after `domain add`: both records, right.
    fn publish(&self, d: &Domain) {
        let txt = &d.records[0];
        self.set(
            &txt.name,
            RecordType::TXT,
            vec![RData::TXT(TXT::new(vec![txt.value.clone()]))],
        );
        self.cname(&d.hostname, INGRESS);
    }
}

fn answer(zone: &Zone, query: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let question = q.queries.first()?.clone();
    let name = question
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let mut m = Message::response(q.metadata.id, q.metadata.op_code);
    m.metadata.message_type = MessageType::Response;
    m.metadata.authoritative = true;
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.add_query(question.clone());
    let z = zone.lock().unwrap();
    let exists = z
        .keys()
        .any(|(n, _)| *n == name || n.ends_with(&format!(".{name}")));
    match z.get(&(name.clone(), question.query_type())) {
        Some(data) => {
            for d in data {
                m.add_answer(Record::from_rdata(question.name().clone(), 0, d.clone()));
            }
        }
        None => {
            if !exists {
                m.metadata.response_code = ResponseCode::NXDomain;
            }
            // Negative answers carry the zone's SOA, as real servers' do.
            let soa = SOA::new(
                Name::from_ascii("ns.test.").unwrap(),
                Name::from_ascii("hostmaster.test.").unwrap(),
                1,
                3600,
                600,
                86400,
                0,
            );
            m.add_authority(Record::from_rdata(
                Name::from_ascii("test.").unwrap(),
                0,
                RData::SOA(soa),
            ));
        }
    }
    m.to_vec().ok()
}

fn settings_for(dep: &Deployment, ns: SocketAddr) -> Settings {
    let mut s = dep.settings();
    s.dns_nameserver = Some(ns);
    s.cname_target = Some(INGRESS.into());
    s.ingress_addrs = vec![INGRESS_IP.parse().unwrap()];
    s
}

fn admin(app: &TestApp) -> (Admin, Caller) {
    (Admin::new(&app.handle.state.core), Caller::operator(None))
}

async fn add(app: &TestApp, p: &TestProject, host: &str) -> Domain {
    let (a, c) = admin(app);
    a.add_domain(&c, &p.id, host).await.unwrap()
}

async fn verify(app: &TestApp, p: &TestProject, d: &Domain) -> Domain {
    let (a, c) = admin(app);
    a.verify_domain(&c, &p.id, &d.id).await.unwrap()
}

fn served_by(app: &TestApp, host: &str) -> Option<String> {
    app.handle
        .state
        .core
        .directory
        .by_host(host)
        .map(|p| p.id.clone())
}

async fn ask(app: &TestApp, host: &str) -> StatusCode {
    app.ops_get(&format!("/ops/tls/ask?domain={host}"))
        .await
        .status
}

/// Add, publish the records, verify through the API; then `Host: <domain>` is the project, its
/// magic links are on that origin, the old host redirects there, and `ask` says yes to it only.
async fn a_verified_domain_serves_its_project_with_links_on_its_origin(backend: Backend) {
    let dns = Dns::start().await;
    let dep = Deployment::new(backend).await;
    let app = dep.spawn_with(settings_for(&dep, dns.addr)).await;
    let p = dep.project(&app, false).await;
    let other = dep.project(&app, false).await;

    // The project belongs to an org whose API key verifies through the Management API.
    let (a, op) = admin(&app);
    let org = a
        .create_org("test", &unique("org"), "Org", "owner@example.com")
        .await
        .unwrap();
    sqlx::query("UPDATE projects SET org_id = $1 WHERE id = $2")
        .bind(&org.id)
        .bind(&p.id)
        .execute(&app.handle.state.core.svc.db.pool)
        .await
        .unwrap();
    let (_, key) = a
        .create_api_key(&Caller::operator(Some(&org.id)), "t", &["*:write".into()])
        .await
        .unwrap();

    let host = format!("auth.{}.example.com", unique("c"));
    let d = a
        .add_domain(&op, &p.id, &host.to_ascii_uppercase())
        .await
        .unwrap();
    assert_eq!(d.hostname, host, "stored lower-case");
    assert_eq!(d.status, "pending");
    assert_eq!(d.records[0].kind, "TXT");
    assert_eq!(d.records[0].name, format!("_reauth-challenge.{host}"));
    assert!(d.records[0].value.starts_with("reauth-verify="));
    assert_eq!(
        (
            d.records[1].kind,
            d.records[1].name.as_str(),
            d.records[1].value.as_str()
        ),
        ("CNAME", host.as_str(), INGRESS)
    );
    assert_eq!(
        d.google_redirect_uri,
        format!("https://{host}/callback/google")
    );
    assert_eq!(ask(&app, &host).await, StatusCode::NOT_FOUND, "pending");
    assert_eq!(served_by(&app, &host), None);

    dns.publish(&d);
    let r = app
        .http
        .post(app.url(&format!(
            "/api/v1/projects/{}/domains/{}/verify",
            p.id, d.id
        )))
        .header("host", "api.example.com")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "verified", "{v}");
    assert!(v["reason"].is_null());
    assert!(v["verified_at"].as_i64().is_some());

    let h = host.clone();
    let dir = app.handle.state.core.directory.clone();
    eventually("domain routed", Duration::from_secs(10), || {
        dir.by_host(&h).is_some()
    })
    .await;
    assert_eq!(served_by(&app, &host).as_deref(), Some(p.id.as_str()));

    // A magic link asked for on the custom domain points at it.
    let on_domain = TestProject {
        host: host.clone(),
        ..p.clone()
    };
    let r = app.request_link(&on_domain, "ada@example.com", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mail = dep.resend.last_to("ada@example.com").await.unwrap();
    assert!(
        mail.link
            .starts_with(&format!("https://{host}/verify?token=")),
        "{}",
        mail.link
    );
    // The old host is now an alias: hosted pages move to the primary.
    let r = app.get(&p.host, "/login", &[]).await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        r.location().as_deref(),
        Some(format!("https://{host}/login").as_str())
    );

    // ask: verified domain and <slug>.<base> yes; unknown, pending and dev-ish names no.
    assert_eq!(ask(&app, &host).await, StatusCode::OK);
    assert_eq!(ask(&app, &host.to_ascii_uppercase()).await, StatusCode::OK);
    assert_eq!(ask(&app, &other.host).await, StatusCode::OK);
    assert_eq!(
        ask(&app, &format!("nope.{BASE_DOMAIN}")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ask(&app, "unknown.example.org").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(ask(&app, "").await, StatusCode::NOT_FOUND);
    let pending = add(&app, &other, &format!("login.{}.example.com", unique("c"))).await;
    assert_eq!(ask(&app, &pending.hostname).await, StatusCode::NOT_FOUND);

    // Removing it stops routing and the ask answer.
    a.remove_domain(&op, &p.id, &d.id).await.unwrap();
    let h = host.clone();
    eventually("domain unrouted", Duration::from_secs(10), || {
        dir.by_host(&h).is_none()
    })
    .await;
    assert_eq!(ask(&app, &host).await, StatusCode::NOT_FOUND);
    app.shutdown().await;
}
on_both!(a_verified_domain_serves_its_project_with_links_on_its_origin);

/// A domain verified through one instance routes on another (the bus, or the project's
/// version within two seconds on the embedded store), and its removal stops it there too.
async fn a_verified_domain_routes_on_every_instance(backend: Backend) {
    let dns = Dns::start().await;
    let dep = Deployment::new(backend).await;
    let one = dep.spawn_with(settings_for(&dep, dns.addr)).await;
    let two = dep.spawn_with(settings_for(&dep, dns.addr)).await;
    let p = dep.project(&one, false).await;
    two.wait_for_project(&p).await;
    let host = format!("auth.{}.example.com", unique("c"));
    let d = add(&one, &p, &host).await;
    dns.publish(&d);
    assert_eq!(verify(&one, &p, &d).await.status, "verified");
    let dir = two.handle.state.core.directory.clone();
    let h = host.clone();
    eventually(
        "routed on the other instance",
        Duration::from_secs(10),
        || dir.by_host(&h).is_some(),
    )
    .await;
    assert_eq!(ask(&two, &host).await, StatusCode::OK);
    let (a, c) = admin(&one);
    a.remove_domain(&c, &p.id, &d.id).await.unwrap();
    let h = host.clone();
    eventually(
        "unrouted on the other instance",
        Duration::from_secs(10),
        || dir.by_host(&h).is_none(),
    )
    .await;
    assert_eq!(ask(&two, &host).await, StatusCode::NOT_FOUND);
    one.shutdown().await;
    two.shutdown().await;
}
on_both!(a_verified_domain_routes_on_every_instance);

/// Each way DNS can be wrong is named: NXDOMAIN, TXT missing, TXT wrong, CNAME elsewhere, no
/// CNAME; an apex with A records on the ingress addresses verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dns_failure_says_why_in_words() {
    let dns = Dns::start().await;
    let dep = Deployment::new(Backend::Embedded).await;
    let app = dep.spawn_with(settings_for(&dep, dns.addr)).await;
    let p = dep.project(&app, false).await;
    let host = format!("auth.{}.example.com", unique("c"));
    let d = add(&app, &p, &host).await;

    let v = verify(&app, &p, &d).await;
    assert_eq!(v.status, "pending");
    let why = v.reason.unwrap();
    assert!(why.starts_with("NXDOMAIN"), "{why}");

    dns.cname(&host, INGRESS);
    let why = verify(&app, &p, &d).await.reason.unwrap();
    assert!(why.starts_with("TXT record missing"), "{why}");
    assert!(why.contains(&d.records[0].value), "{why}");

    dns.txt(&host, "reauth-verify=not-the-token");
    let why = verify(&app, &p, &d).await.reason.unwrap();
    assert!(why.starts_with("TXT record wrong"), "{why}");
    assert!(why.contains("not-the-token"), "{why}");

    dns.txt(&host, &d.records[0].value);
    dns.cname(&host, "elsewhere.example.net");
    let why = verify(&app, &p, &d).await.reason.unwrap();
    assert!(why.starts_with("CNAME points elsewhere"), "{why}");
    assert!(why.contains("elsewhere.example.net"), "{why}");

    // Missing CNAME: the name exists (its TXT child does) but points nowhere.
    dns.set(&host, RecordType::CNAME, vec![]);
    let v = verify(&app, &p, &d).await;
    assert_eq!(v.status, "pending");
    let why = v.reason.unwrap();
    assert!(why.starts_with("no CNAME or address record"), "{why}");
    assert!(why.contains(INGRESS), "{why}");

    // An A record off the ingress addresses is named; on them, the (apex) domain verifies.
    dns.set(
        &host,
        RecordType::A,
        vec![RData::A(A("198.51.100.7".parse().unwrap()))],
    );
    let why = verify(&app, &p, &d).await.reason.unwrap();
    assert!(why.contains("198.51.100.7"), "{why}");
    let ip: IpAddr = INGRESS_IP.parse().unwrap();
    let IpAddr::V4(v4) = ip else { unreachable!() };
    dns.set(&host, RecordType::A, vec![RData::A(A(v4))]);
    let v = verify(&app, &p, &d).await;
    assert_eq!(v.status, "verified", "{:?}", v.reason);
    assert_eq!(v.reason, None);
    app.shutdown().await;
}

/// A nameserver that never answers (UDP dropped, TCP accepted and left silent) gives a clear
/// timeout within seconds, not a hung request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole_nameserver_times_out_promptly_with_a_clear_error() {
    let (udp, tcp, addr) = udp_and_tcp().await;
    let held = Arc::new(Mutex::new(vec![]));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = tcp.accept().await {
            h.lock().unwrap().push(s);
        }
    });
    let dep = Deployment::new(Backend::Embedded).await;
    let app = dep.spawn_with(settings_for(&dep, addr)).await;
    let p = dep.project(&app, false).await;
    let d = add(&app, &p, &format!("auth.{}.example.com", unique("c"))).await;

    let started = Instant::now();
    let v = verify(&app, &p, &d).await;
    let took = started.elapsed();
    assert_eq!(v.status, "pending");
    let why = v.reason.unwrap();
    assert!(why.starts_with("nameserver timeout"), "{why}");
    assert!(why.contains(&addr.to_string()), "{why}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    eprintln!("black-hole verification answered in {took:?}");
    drop(udp);
    app.shutdown().await;
}

/// A verified domain whose records vanish keeps routing (`failing`) through the grace period
/// and is `unverified` (no routing, no `ask`) only after it; each change is audited and counted.
async fn a_lost_domain_stops_routing_only_after_the_grace_period(backend: Backend) {
    let dns = Dns::start().await;
    let dep = Deployment::new(backend).await;
    let app = dep.spawn_with(settings_for(&dep, dns.addr)).await;
    let core = app.handle.state.core.clone();
    let p = dep.project(&app, false).await;
    let host = format!("auth.{}.example.com", unique("c"));
    let d = add(&app, &p, &host).await;
    dns.publish(&d);
    assert_eq!(verify(&app, &p, &d).await.status, "verified");
    let dir = core.directory.clone();
    let h = host.clone();
    eventually("routed", Duration::from_secs(10), || {
        dir.by_host(&h).is_some()
    })
    .await;

    let recheck = core.svc.settings.domain_recheck_secs as i64 * 1000;
    let grace = core.svc.settings.domain_grace_secs as i64 * 1000;
    assert_eq!((recheck, grace), (6 * 3_600_000, 72 * 3_600_000));
    let t0 = now_ms();

    // Not due yet: nothing is checked.
    assert!(core.recheck_domains(t0 + 1000).await.unwrap().is_empty());
    // Due and still fine.
    assert!(
        core.recheck_domains(t0 + recheck + 1)
            .await
            .unwrap()
            .is_empty()
    );

    dns.set(
        &format!("_reauth-challenge.{host}"),
        RecordType::TXT,
        vec![],
    );
    let t1 = t0 + 2 * recheck + 2;
    assert!(core.recheck_domains(t1).await.unwrap().is_empty());
    let (a, c) = admin(&app);
    let now = a.list_domains(&c, &p.id).await.unwrap();
    assert_eq!(now[0].status, "failing");
    assert!(
        now[0]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("TXT record missing")
    );
    assert_eq!(served_by(&app, &host).as_deref(), Some(p.id.as_str()));
    assert_eq!(ask(&app, &host).await, StatusCode::OK);

    // Still within the grace period (measured from the last success at t0 + recheck + 1).
    let last_ok = t0 + recheck + 1;
    assert!(
        core.recheck_domains(last_ok + grace)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(served_by(&app, &host).as_deref(), Some(p.id.as_str()));

    // Past it: unverified, unrouted here, and no certificate for it.
    let changed = core
        .recheck_domains(last_ok + grace + recheck + 1)
        .await
        .unwrap();
    assert_eq!(changed, vec![p.id.clone()]);
    let now = a.list_domains(&c, &p.id).await.unwrap();
    assert_eq!(now[0].status, "unverified");
    let h = host.clone();
    eventually("unrouted", Duration::from_secs(10), || {
        dir.by_host(&h).is_none()
    })
    .await;
    assert_eq!(ask(&app, &host).await, StatusCode::NOT_FOUND);
    assert_eq!(
        dir.by_host(&p.host).map(|x| x.id.clone()),
        Some(p.id.clone())
    );

    // Records back: a manual verify restores it.
    dns.publish(&d);
    assert_eq!(verify(&app, &p, &d).await.status, "verified");
    let h = host.clone();
    eventually("routed again", Duration::from_secs(10), || {
        dir.by_host(&h).is_some()
    })
    .await;

    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE target = $1 ORDER BY created_at, id",
    )
    .bind(&d.id)
    .fetch_all(&core.svc.db.pool)
    .await
    .unwrap();
    assert_eq!(
        actions,
        [
            "domain.added",
            "domain.verified",
            "domain.failing",
            "domain.unverified",
            "domain.verified"
        ]
    );
    let metrics = app.ops_get("/metrics").await.body;
    assert!(
        metrics.contains("reauth_domain_checks_total{outcome=\"txt_missing\"}"),
        "{metrics}"
    );
    app.shutdown().await;
}
on_both!(a_lost_domain_stops_routing_only_after_the_grace_period);

/// A host name belongs to one project, whatever its case or trailing dot; the base domain and
/// its subdomains are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projects_cannot_claim_one_hostname() {
    let dep = Deployment::new(Backend::Embedded).await;
    let app = dep.spawn().await;
    let a = dep.project(&app, false).await;
    let b = dep.project(&app, false).await;
    let host = format!("auth.{}.example.com", unique("c"));
    add(&app, &a, &host).await;
    let (admin, c) = admin(&app);
    for claim in [host.clone(), host.to_ascii_uppercase(), format!("{host}.")] {
        let e = admin.add_domain(&c, &b.id, &claim).await.unwrap_err();
        assert!(matches!(e, AdminError::Conflict(_)), "{claim}: {e:?}");
        let e = admin.add_domain(&c, &a.id, &claim).await.unwrap_err();
        assert!(matches!(e, AdminError::Conflict(_)), "{claim}: {e:?}");
    }
    for reserved in [BASE_DOMAIN.to_string(), format!("x.{BASE_DOMAIN}")] {
        let e = admin.add_domain(&c, &b.id, &reserved).await.unwrap_err();
        assert!(matches!(e, AdminError::Invalid { .. }), "{reserved}: {e:?}");
    }
    for bad in [
        "localhost",
        "a..example.com",
        "under_score.example.com",
        "10.0.0.1",
    ] {
        let e = admin.add_domain(&c, &b.id, bad).await.unwrap_err();
        assert!(matches!(e, AdminError::Invalid { .. }), "{bad}: {e:?}");
    }
    app.shutdown().await;
}

/// `auth.bücher-….example` is stored as punycode, its records are named in punycode, and it
/// verifies, routes and passes `ask` under that name; the Unicode spelling is the same claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idn_hostname_is_stored_and_served_as_punycode() {
    let dns = Dns::start().await;
    let dep = Deployment::new(Backend::Embedded).await;
    let app = dep.spawn_with(settings_for(&dep, dns.addr)).await;
    let p = dep.project(&app, false).await;
    let q = dep.project(&app, false).await;
    let unicode = format!("auth.bücher-{}.example", unique("i"));
    let d = add(&app, &p, &unicode).await;
    let puny = reauth_actors::domains::normalize(&unicode).unwrap();
    assert!(puny.starts_with("auth.xn--bcher-"), "{puny}");
    assert!(puny.is_ascii());
    assert_eq!(d.hostname, puny);
    assert_eq!(d.records[0].name, format!("_reauth-challenge.{puny}"));

    let (a, c) = admin(&app);
    let e = a
        .add_domain(&c, &q.id, &unicode.to_uppercase())
        .await
        .unwrap_err();
    assert!(matches!(e, AdminError::Conflict(_)), "{e:?}");

    dns.publish(&d);
    assert_eq!(verify(&app, &p, &d).await.status, "verified");
    let dir = app.handle.state.core.directory.clone();
    let h = puny.clone();
    eventually("routed", Duration::from_secs(10), || {
        dir.by_host(&h).is_some()
    })
    .await;
    assert_eq!(ask(&app, &puny).await, StatusCode::OK);
    let r = app.get(&puny, "/login", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.shutdown().await;
}

/// The primary is the canonical origin and the other verified domains redirect to it; making
/// another the primary moves the origin; removing the primary promotes the oldest remaining.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_domain_is_the_origin_and_aliases_redirect_to_it() {
    let dns = Dns::start().await;
    let dep = Deployment::new(Backend::Embedded).await;
    let app = dep.spawn_with(settings_for(&dep, dns.addr)).await;
    let p = dep.project(&app, false).await;
    let first = add(&app, &p, &format!("auth.{}.example.com", unique("a"))).await;
    let second = add(&app, &p, &format!("login.{}.example.org", unique("b"))).await;
    assert!(first.primary && !second.primary);
    for d in [&first, &second] {
        dns.publish(d);
        assert_eq!(verify(&app, &p, d).await.status, "verified");
    }
    let dir = app.handle.state.core.directory.clone();
    let origin = |dir: &reauth_actors::directory::Directory| {
        dir.project(&p.id)
            .and_then(|x| x.origin.as_ref().map(|o| o.host.clone()))
    };
    let want = first.hostname.clone();
    eventually("first is the origin", Duration::from_secs(10), || {
        origin(&dir).as_deref() == Some(want.as_str()) && dir.by_host(&second.hostname).is_some()
    })
    .await;
    let r = app.get(&second.hostname, "/login", &[]).await;
    assert_eq!(
        r.location().as_deref(),
        Some(format!("https://{}/login", first.hostname).as_str())
    );

    let (a, c) = admin(&app);
    let s = a.set_primary_domain(&c, &p.id, &second.id).await.unwrap();
    assert!(s.primary);
    let want = second.hostname.clone();
    eventually("second is the origin", Duration::from_secs(10), || {
        origin(&dir).as_deref() == Some(want.as_str())
    })
    .await;
    let r = app.get(&first.hostname, "/login", &[]).await;
    assert_eq!(
        r.location().as_deref(),
        Some(format!("https://{}/login", second.hostname).as_str())
    );
    let r = app.get(&second.hostname, "/login", &[]).await;
    assert_eq!(r.status, StatusCode::OK);

    a.remove_domain(&c, &p.id, &second.id).await.unwrap();
    let list = a.list_domains(&c, &p.id).await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].primary, "the remaining domain is promoted");
    let want = first.hostname.clone();
    eventually("first again", Duration::from_secs(10), || {
        origin(&dir).as_deref() == Some(want.as_str())
    })
    .await;
    app.shutdown().await;
}

fn cli(dir: &std::path::Path, ns: SocketAddr, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reauth"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("REAUTH_DATABASE_URL")
        .env_remove("REAUTH_REDIS_URL")
        .env_remove("REAUTH_MASTER_KEY")
        .env("REAUTH_DNS_NAMESERVER", ns.to_string())
        .env("REAUTH_CNAME_TARGET", INGRESS)
        .env("REAUTH_BASE_DOMAIN", BASE_DOMAIN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `reauth domain add|list|verify|primary|remove <project> … --json` through the façade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_adds_verifies_lists_and_removes_domains() {
    let dns = Dns::start().await;
    let dir = std::env::temp_dir().join(unique("reauth-domains-cli-"));
    let ns = dns.addr;
    let slug = &unique("cli");
    cli(&dir, ns, &["project", "create", slug, "--json"]);
    let host = format!("auth.bücher-{}.example", unique("c"));
    let d = cli(&dir, ns, &["domain", "add", slug, &host, "--json"]);
    let puny = d["hostname"].as_str().unwrap().to_string();
    assert!(puny.starts_with("auth.xn--"), "{d}");
    assert_eq!(d["status"], "pending");
    assert_eq!(d["records"][1]["type"], "CNAME");
    assert_eq!(d["records"][1]["value"], INGRESS);
    assert_eq!(
        d["google_redirect_uri"],
        format!("https://{puny}/callback/google")
    );

    let v = cli(&dir, ns, &["domain", "verify", slug, &host, "--json"]);
    assert_eq!(v["status"], "pending");
    assert!(v["reason"].as_str().unwrap().starts_with("NXDOMAIN"), "{v}");

    dns.txt(&puny, d["records"][0]["value"].as_str().unwrap());
    dns.cname(&puny, INGRESS);
    let id = d["id"].as_str().unwrap();
    let v = cli(&dir, ns, &["domain", "verify", slug, id, "--json"]);
    assert_eq!(v["status"], "verified", "{v}");
    let list = cli(&dir, ns, &["domain", "list", slug, "--json"]);
    assert_eq!(list[0]["hostname"], puny.as_str());
    assert_eq!(list[0]["status"], "verified");
    let p = cli(&dir, ns, &["domain", "primary", slug, &puny, "--json"]);
    assert_eq!(p["primary"], true);
    let r = cli(&dir, ns, &["domain", "remove", slug, &puny, "--json"]);
    assert_eq!(r["removed"], true);
    let list = cli(&dir, ns, &["domain", "list", slug, "--json"]);
    assert_eq!(list, serde_json::json!([]));
}

/// End to end through Caddy (Debian's `caddy` 2.6, installed by `scripts/services`): on-demand
/// TLS from Caddy's internal CA asks reauth's ops listener; a verified domain is served over
/// HTTPS by its project, and a name reauth does not serve gets no certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_serves_a_verified_domain_over_https_on_demand() {
    assert!(
        std::process::Command::new("caddy")
            .arg("version")
            .output()
            .is_ok(),
        "caddy is not installed: run scripts/services (or apt-get install caddy)"
    );
    let dns = Dns::start().await;
    let dep = Deployment::new(Backend::Embedded).await;
    let app = dep.spawn_with(settings_for(&dep, dns.addr)).await;
    let p = dep.project(&app, false).await;
    let host = format!("auth.{}.example.com", unique("c"));
    let d = add(&app, &p, &host).await;
    dns.publish(&d);
    assert_eq!(verify(&app, &p, &d).await.status, "verified");

    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (http_port, https_port) = (free(), free());
    let tmp = std::env::temp_dir().join(unique("reauth-caddy-"));
    std::fs::create_dir_all(&tmp).unwrap();
    let ops = app.handle.ops_addr.unwrap();
    let caddyfile = format!(
        "{{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n\thttp_port {http_port}\n\thttps_port {https_port}\n\ton_demand_tls {{\n\t\task http://{ops}/ops/tls/ask\n\t}}\n}}\n\nhttps:// {{\n\ttls {{\n\t\ton_demand\n\t}}\n\treverse_proxy {}\n}}\n",
        app.addr
    );
    std::fs::write(tmp.join("Caddyfile"), caddyfile).unwrap();
    let child = std::process::Command::new("caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(tmp.join("Caddyfile"))
        .env("HOME", &tmp)
        .env("XDG_DATA_HOME", tmp.join("data"))
        .env("XDG_CONFIG_HOME", tmp.join("config"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(tmp.join("caddy.log")).unwrap())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _caddy = Kill(child);
    let root = tmp.join("data/caddy/pki/authorities/local/root.crt");
    let start = Instant::now();
    while !(root.exists() && std::net::TcpStream::connect(("127.0.0.1", https_port)).is_ok()) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "caddy did not start: {}",
            std::fs::read_to_string(tmp.join("caddy.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pem = std::fs::read(&root).unwrap();
    let at: SocketAddr = ([127, 0, 0, 1], https_port).into();
    let unknown = format!("nope.{}.example.com", unique("u"));
    let client = reqwest::Client::builder()
        .tls_certs_merge([reqwest::Certificate::from_pem(&pem).unwrap()])
        .resolve(&host, at)
        .resolve(&unknown, at)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let started = Instant::now();
    let r = client
        .get(format!("https://{host}:{https_port}/login"))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e:?}\n{}",
                std::fs::read_to_string(tmp.join("caddy.log")).unwrap_or_default()
            )
        });
    eprintln!(
        "first HTTPS request (certificate issued on demand) took {:?}",
        started.elapsed()
    );
    assert_eq!(r.status().as_u16(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains(&format!("Project {}", p.slug)), "{body}");
    let refused = client
        .get(format!("https://{unknown}:{https_port}/login"))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "no certificate for a name reauth does not serve"
    );
    app.shutdown().await;
}
