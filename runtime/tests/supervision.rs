//! Supervisor and registry behaviour with toy actors and injected panics.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{eventually, metric, recorder};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, call_t};
use reauth_runtime::metrics::ActorMetrics;
use reauth_runtime::registry::Registry;
use reauth_runtime::supervisor::{ChildSpec, Policy, Restart, SupervisorHandle};

enum ToyMsg {
    Ping(RpcReplyPort<u64>),
    Panic,
    Exit,
}

/// A toy actor: answers pings with how many it has answered, panics or exits on demand.
struct Toy {
    started: Arc<AtomicUsize>,
}

impl Actor for Toy {
    type Msg = ToyMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _me: ActorRef<ToyMsg>, _: ()) -> Result<u64, ActorProcessingErr> {
        self.started.fetch_add(1, Ordering::SeqCst);
        // A little startup work, so concurrent activations really overlap.
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(0)
    }

    async fn handle(
        &self,
        me: ActorRef<ToyMsg>,
        msg: ToyMsg,
        n: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ToyMsg::Ping(reply) => {
                *n += 1;
                let _ = reply.send(*n);
            }
            ToyMsg::Panic => panic!("injected panic"),
            ToyMsg::Exit => me.stop(Some("done".into())),
        }
        Ok(())
    }
}

fn toy_spec(
    id: &str,
    kind: &'static str,
    restart: Restart,
    started: Arc<AtomicUsize>,
) -> ChildSpec {
    ChildSpec::new(id, restart, ActorMetrics::new(kind), move |sup| {
        let started = started.clone();
        async move {
            let (r, _) = Actor::spawn_linked(None, Toy { started }, (), sup).await?;
            Ok(r.get_cell())
        }
    })
}

async fn ping(cell: &ractor::ActorCell) -> Option<u64> {
    let r: ActorRef<ToyMsg> = cell.clone().into();
    call_t!(r, ToyMsg::Ping, 1000).ok()
}

fn fast_policy(max_restarts: usize) -> Policy {
    Policy {
        max_restarts,
        window: Duration::from_secs(10),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..Policy::default()
    }
}

#[tokio::test]
async fn a_panicking_child_is_restarted_with_backoff_while_siblings_keep_serving() {
    recorder();
    let sup = SupervisorHandle::spawn("toy_sup_a", fast_policy(5), None)
        .await
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let a = sup
        .start_child(toy_spec("a", "toy_a", Restart::Permanent, started.clone()))
        .await
        .unwrap();
    let b = sup
        .start_child(toy_spec("b", "toy_a", Restart::Permanent, started.clone()))
        .await
        .unwrap();
    assert_eq!(ping(&b).await, Some(1));

    let a_ref: ActorRef<ToyMsg> = a.clone().into();
    a_ref.cast(ToyMsg::Panic).unwrap();
    let t0 = std::time::Instant::now();
    // While `a` is down, its sibling still answers, with its state intact.
    assert_eq!(ping(&b).await, Some(2));

    let mut restarted = None;
    for _ in 0..200 {
        if let Some(c) = sup.child("a").await.unwrap()
            && c.get_id() != a.get_id()
        {
            restarted = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let restarted = restarted.expect("child a restarted");
    assert!(
        t0.elapsed() >= Duration::from_millis(15),
        "restart waited for the backoff"
    );
    assert_eq!(
        ping(&restarted).await,
        Some(1),
        "a restarted child starts from fresh state"
    );
    assert_eq!(started.load(Ordering::SeqCst), 3);
    assert_eq!(metric("reauth_actor_restarts_total", "toy_a"), 1.0);
    assert_eq!(metric("reauth_actor_failures_total", "toy_a"), 1.0);
    assert_eq!(metric("reauth_actors_alive", "toy_a"), 2.0);
    let children = sup.children().await.unwrap();
    assert_eq!(children.iter().find(|c| c.id == "a").unwrap().restarts, 1);
}

#[tokio::test]
async fn normal_exits_are_not_failures() {
    recorder();
    let sup = SupervisorHandle::spawn("toy_sup_b", fast_policy(0), None)
        .await
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let t = sup
        .start_child(toy_spec("t", "toy_b", Restart::Transient, started.clone()))
        .await
        .unwrap();
    let keep = sup
        .start_child(toy_spec(
            "keep",
            "toy_b",
            Restart::Transient,
            started.clone(),
        ))
        .await
        .unwrap();
    let tr: ActorRef<ToyMsg> = t.into();
    tr.cast(ToyMsg::Exit).unwrap();
    let s = sup.clone();
    let mut gone = false;
    for _ in 0..200 {
        if s.child("t").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        gone,
        "a transient child that exits normally is removed, not restarted"
    );
    // Even with max_restarts = 0 the supervisor is alive: a normal exit is no failure.
    assert_eq!(ping(&keep).await, Some(1));
    assert_eq!(metric("reauth_actor_failures_total", "toy_b"), 0.0);
    assert_eq!(metric("reauth_actor_restarts_total", "toy_b"), 0.0);
    assert_eq!(metric("reauth_actor_escalations_total", "toy_sup_b"), 0.0);
}

/// A parent that records its supervisor's failure (escalation target).
struct Parent {
    escalated: Arc<AtomicUsize>,
}

impl Actor for Parent {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        evt: ractor::SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let ractor::SupervisionEvent::ActorFailed(_, _) = evt {
            self.escalated.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_restart_storm_escalates_to_the_parent() {
    recorder();
    let escalated = Arc::new(AtomicUsize::new(0));
    let (parent, _) = Actor::spawn(
        None,
        Parent {
            escalated: escalated.clone(),
        },
        (),
    )
    .await
    .unwrap();
    let sup = SupervisorHandle::spawn("toy_sup_c", fast_policy(3), Some(parent.get_cell()))
        .await
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    sup.start_child(toy_spec(
        "storm",
        "toy_c",
        Restart::Permanent,
        started.clone(),
    ))
    .await
    .unwrap();
    // Crash the child every time it comes back.
    for _ in 0..200 {
        if escalated.load(Ordering::SeqCst) > 0 {
            break;
        }
        if let Ok(Some(c)) = sup.child("storm").await {
            let r: ActorRef<ToyMsg> = c.into();
            let _ = r.cast(ToyMsg::Panic);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        escalated.load(Ordering::SeqCst),
        1,
        "supervisor failed upward"
    );
    assert_eq!(metric("reauth_actor_escalations_total", "toy_sup_c"), 1.0);
    assert_eq!(metric("reauth_actor_failures_total", "toy_c"), 4.0);
    assert_eq!(metric("reauth_actor_restarts_total", "toy_c"), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_activations_of_one_key_start_exactly_one_actor() {
    recorder();
    let reg: Registry<String, ToyMsg> = Registry::start("toy_reg_a", None, None).await.unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let reg = reg.clone();
        let started = started.clone();
        tasks.push(tokio::spawn(async move {
            let a = reg
                .get_or_spawn(&"user-1".to_string(), || (Toy { started }, ()))
                .await
                .unwrap();
            a.get_id()
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap());
    }
    assert_eq!(ids.len(), 1, "every caller got the same actor");
    assert_eq!(
        started.load(Ordering::SeqCst),
        1,
        "exactly one actor started"
    );
    assert_eq!(reg.len(), 1);
    assert_eq!(metric("reauth_actors_alive", "toy_reg_a"), 1.0);
}

#[tokio::test]
async fn idle_actors_are_passivated_and_come_back_fresh_on_next_use() {
    recorder();
    let reg: Registry<String, ToyMsg> =
        Registry::start("toy_reg_b", Some(Duration::from_millis(60)), None)
            .await
            .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let key = "k".to_string();
    let s = started.clone();
    let a = reg
        .get_or_spawn(&key, || (Toy { started: s }, ()))
        .await
        .unwrap();
    assert_eq!(call_t!(a, ToyMsg::Ping, 1000).unwrap(), 1);
    let r = reg.clone();
    eventually("passivation", Duration::from_secs(5), || r.is_empty()).await;
    assert_eq!(metric("reauth_actor_passivations_total", "toy_reg_b"), 1.0);
    assert_eq!(
        metric("reauth_actor_failures_total", "toy_reg_b"),
        0.0,
        "passivation is no failure"
    );
    assert_eq!(metric("reauth_actors_alive", "toy_reg_b"), 0.0);
    let s = started.clone();
    let b = reg
        .get_or_spawn(&key, || (Toy { started: s }, ()))
        .await
        .unwrap();
    assert_ne!(a.get_id(), b.get_id());
    assert_eq!(call_t!(b, ToyMsg::Ping, 1000).unwrap(), 1);
    assert_eq!(started.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_panicking_registry_actor_is_started_again_lazily() {
    recorder();
    let reg: Registry<String, ToyMsg> = Registry::start("toy_reg_c", None, None).await.unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let k1 = "one".to_string();
    let k2 = "two".to_string();
    let a = reg
        .get_or_spawn(&k1, || (Toy { started: s }, ()))
        .await
        .unwrap();
    let s = started.clone();
    let other = reg
        .get_or_spawn(&k2, || (Toy { started: s }, ()))
        .await
        .unwrap();
    a.cast(ToyMsg::Panic).unwrap();
    let r = reg.clone();
    let k = k1.clone();
    eventually(
        "failed actor leaves the registry",
        Duration::from_secs(5),
        || r.peek(&k).is_none(),
    )
    .await;
    assert_eq!(
        call_t!(other, ToyMsg::Ping, 1000).unwrap(),
        1,
        "sibling unaffected"
    );
    let s = started.clone();
    let again = reg
        .get_or_spawn(&k1, || (Toy { started: s }, ()))
        .await
        .unwrap();
    assert_ne!(again.get_id(), a.get_id());
    assert_eq!(call_t!(again, ToyMsg::Ping, 1000).unwrap(), 1);
    assert_eq!(metric("reauth_actor_failures_total", "toy_reg_c"), 1.0);
    assert_eq!(metric("reauth_actors_alive", "toy_reg_c"), 2.0);
}

#[tokio::test]
async fn starting_a_running_child_again_returns_it_instead_of_a_second_one() {
    recorder();
    let sup = SupervisorHandle::spawn("toy_sup_d", fast_policy(5), None)
        .await
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let (a, b) = tokio::join!(
        sup.start_child(toy_spec(
            "same",
            "toy_d",
            Restart::Permanent,
            started.clone()
        )),
        sup.start_child(toy_spec(
            "same",
            "toy_d",
            Restart::Permanent,
            started.clone()
        )),
    );
    assert_eq!(a.unwrap().get_id(), b.unwrap().get_id());
    assert_eq!(started.load(Ordering::SeqCst), 1);
    assert_eq!(metric("reauth_actors_alive", "toy_d"), 1.0);
}
