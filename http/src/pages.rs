//! Hosted pages: minijinja templates (autoescaped, compiled into the binary) with per-project
//! branding. Every error a person can meet is a readable page with a way forward.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, Value, context};
use reauth_actors::model::Project;
use serde::Serialize;

pub struct Pages {
    env: Environment<'static>,
}

/// The branding a page needs; a neutral default when the host matches no project.
#[derive(Serialize)]
pub struct Brand {
    pub name: String,
    pub logo_url: Option<String>,
    pub accent: String,
}

impl Brand {
    pub fn of(p: &Project) -> Self {
        Self {
            name: p.name.clone(),
            logo_url: p.logo_url.clone(),
            accent: p
                .accent_color
                .as_deref()
                .filter(|c| valid_color(c))
                .unwrap_or("#4f46e5")
                .to_string(),
        }
    }

    pub fn neutral() -> Self {
        Self {
            name: "reauth".into(),
            logo_url: None,
            accent: "#4f46e5".into(),
        }
    }
}

/// `#rgb` / `#rrggbb` only: the colour lands inside a `<style>` block.
pub use reauth_actors::model::valid_color;

impl Pages {
    pub fn new() -> anyhow::Result<Self> {
        let mut env = Environment::new();
        env.add_template("layout.html", include_str!("../../templates/layout.html"))?;
        env.add_template("login.html", include_str!("../../templates/login.html"))?;
        env.add_template(
            "check_email.html",
            include_str!("../../templates/check_email.html"),
        )?;
        env.add_template("message.html", include_str!("../../templates/message.html"))?;
        env.add_template("verify.html", include_str!("../../templates/verify.html"))?;
        env.add_template("account.html", include_str!("../../templates/account.html"))?;
        env.add_template("ops.html", include_str!("../../templates/ops.html"))?;
        Ok(Self { env })
    }

    pub fn render(&self, status: StatusCode, name: &str, ctx: Value) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, template = name, "template failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Html("<!doctype html><title>Error</title><p>Something went wrong. Please try again.</p>"),
                )
                    .into_response()
            }
        }
    }

    /// A message page: heading, text and one link forward.
    pub fn message(
        &self,
        status: StatusCode,
        brand: &Brand,
        heading: &str,
        message: &str,
        action: Option<(&str, &str)>,
    ) -> Response {
        let (action_href, action_label) = action.unzip();
        self.render(
            status,
            "message.html",
            context! {
                project => minijinja::value::Serde(brand),
                heading, message, action_href, action_label,
            },
        )
    }
}
