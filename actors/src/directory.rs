//! The directory: an immutable snapshot of every project's configuration and the hosts each
//! answers on. ProjectActors write it (on start and on every change); the hot path and every
//! other reader read it without a mailbox hop. It knows nothing of actors, so sessions and
//! login code can read it without depending on the project supervisor.

use std::sync::Arc;

use dashmap::DashMap;
use reauth_runtime::Settings;

use crate::model::{Origin, Project, ProjectRef, split_port};

/// Snapshots of every project and the hosts they answer on. Written by ProjectActors only.
#[derive(Default)]
pub struct Directory {
    by_id: DashMap<String, ProjectRef>,
    by_host: DashMap<String, String>,
    /// Per-project counters, shared by every snapshot of a project.
    pub stats: crate::stats::Stats,
}

impl Directory {
    pub fn project(&self, id: &str) -> Option<ProjectRef> {
        self.by_id.get(id).map(|p| p.value().clone())
    }

    /// The project served on `host`: a lower-case host name without its port, as the edge's
    /// strict `Host` parser gives it.
    pub fn by_host(&self, host: &str) -> Option<ProjectRef> {
        let id = self.by_host.get(host)?;
        self.by_id.get(id.value()).map(|p| p.value().clone())
    }

    /// Whether on-demand TLS may issue a certificate for `host` (lower-case, no port): a routed
    /// custom domain of some project, or `<slug>.<base domain>`. Never a dev host. From memory:
    /// a TLS handshake must not wait on the database.
    pub fn tls_allowed(&self, host: &str, base_domain: Option<&str>) -> bool {
        let Some(p) = self.by_host(host) else {
            return false;
        };
        p.domains.iter().any(|d| d == host)
            || (p.domain_verified && p.custom_domain.as_deref() == Some(host))
            || base_domain.is_some_and(|b| host.strip_suffix(b) == Some(&format!("{}.", p.slug)))
    }

    pub fn projects(&self) -> Vec<ProjectRef> {
        let mut v: Vec<_> = self.by_id.iter().map(|e| e.value().clone()).collect();
        v.sort_by(|a, b| a.slug.cmp(&b.slug));
        v
    }

    pub(crate) fn publish(&self, mut p: Project, settings: &Settings) {
        let base_domain = settings.base_domain.as_deref();
        p.origin = Origin::of(&p, base_domain, settings.public_scheme.as_deref());
        p.stats = self.stats.of(&p.id);
        let hosts = hosts_of(&p, base_domain);
        self.by_host.retain(|_, id| id != &p.id);
        for h in hosts {
            self.by_host.insert(h, p.id.clone());
        }
        self.by_id.insert(p.id.clone(), Arc::new(p));
    }

    pub(crate) fn remove(&self, id: &str) {
        self.by_host.retain(|_, pid| pid != id);
        self.by_id.remove(id);
        self.stats.remove(id);
    }
}

fn hosts_of(p: &Project, base_domain: Option<&str>) -> Vec<String> {
    let mut hosts: Vec<String> = p
        .dev_hosts
        .iter()
        .map(|h| split_port(h).0.to_ascii_lowercase())
        .collect();
    if let Some(base) = base_domain {
        hosts.push(format!("{}.{}", p.slug, base));
    }
    if let (Some(d), true) = (&p.custom_domain, p.domain_verified) {
        hosts.push(d.to_ascii_lowercase());
    }
    hosts.extend(p.domains.iter().cloned());
    hosts
}
