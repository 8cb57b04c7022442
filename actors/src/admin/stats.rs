//! A project's numbers for the dashboard's overview: users, live sessions, monthly active
//! users, subscriptions by plan, and sign-ins per day (from the audit log's auth events).

use serde::Serialize;
use sqlx::Row;

use super::{Admin, AdminResult, Caller};
use crate::model::grants_plan;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Serialize)]
pub struct PlanCount {
    pub plan: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayCount {
    /// Start of the UTC day, ms since the epoch.
    pub day: i64,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectStats {
    pub users: i64,
    pub active_sessions: i64,
    /// Users who signed in within the last 30 days.
    pub monthly_active: i64,
    /// Subscriptions that grant a plan, by plan (an unmapped price shows its price id).
    pub subscriptions: Vec<PlanCount>,
    /// The last `days` UTC days, oldest first, zeros included.
    pub sign_ins: Vec<DayCount>,
}

impl Admin {
    pub async fn project_stats(
        &self,
        caller: &Caller,
        project_id: &str,
        days: i64,
        now: i64,
    ) -> AdminResult<ProjectStats> {
        let project = self.project_of(caller, project_id).await?;
        let pool = &self.svc.db.pool;
        let users: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM end_users WHERE project_id = $1 AND deleted_at IS NULL",
        )
        .bind(project_id)
        .fetch_one(pool)
        .await?;
        let active_sessions: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE project_id = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(project_id)
        .bind(now)
        .fetch_one(pool)
        .await?;
        let monthly_active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM end_users WHERE project_id = $1 AND deleted_at IS NULL AND last_login_at >= $2",
        )
        .bind(project_id)
        .bind(now - 30 * DAY_MS)
        .fetch_one(pool)
        .await?;
        let rows = sqlx::query(
            "SELECT price_id, status, COUNT(*) AS n FROM subscriptions WHERE project_id = $1 GROUP BY price_id, status",
        )
        .bind(project_id)
        .fetch_all(pool)
        .await?;
        let mut subscriptions: Vec<PlanCount> = vec![];
        for r in &rows {
            let status: String = r.try_get("status")?;
            if !grants_plan(&status) {
                continue;
            }
            let price: Option<String> = r.try_get("price_id")?;
            let n: i64 = r.try_get("n")?;
            let plan = price
                .as_deref()
                .map(|p| {
                    project
                        .plan_for_price(p)
                        .map_or_else(|| p.to_string(), |m| m.plan.clone())
                })
                .unwrap_or_else(|| "(no price)".into());
            match subscriptions.iter_mut().find(|c| c.plan == plan) {
                Some(c) => c.count += n,
                None => subscriptions.push(PlanCount { plan, count: n }),
            }
        }
        subscriptions.sort_by(|a, b| b.count.cmp(&a.count).then(a.plan.cmp(&b.plan)));
        let days = days.clamp(1, 90);
        let today = now.div_euclid(DAY_MS);
        let first = today - days + 1;
        let rows = sqlx::query(
            "SELECT created_at / 86400000 AS day, COUNT(*) AS n FROM audit_log
             WHERE project_id = $1 AND action = 'auth.sign_in' AND created_at >= $2
             GROUP BY created_at / 86400000",
        )
        .bind(project_id)
        .bind(first * DAY_MS)
        .fetch_all(pool)
        .await?;
        let mut sign_ins: Vec<DayCount> = (first..=today)
            .map(|d| DayCount {
                day: d * DAY_MS,
                count: 0,
            })
            .collect();
        for r in &rows {
            let day: i64 = r.try_get("day")?;
            let n: i64 = r.try_get("n")?;
            if let Some(slot) = sign_ins.get_mut((day - first) as usize)
                && day >= first
            {
                slot.count += n;
            }
        }
        Ok(ProjectStats {
            users,
            active_sessions,
            monthly_active,
            subscriptions,
            sign_ins,
        })
    }
}
