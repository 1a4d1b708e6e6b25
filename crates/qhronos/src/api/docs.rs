//! `GET /docs`: an API viewer (Swagger UI) for `/openapi.json` that works offline. Its files are
//! vendored under `assets/swagger-ui/` (see the README there) and compiled into the binary;
//! nothing is fetched from elsewhere.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

use super::AppState;

/// The viewer's asset routes, each public (see `auth::permissions::PUBLIC`).
pub const ASSETS: &[&str] = &[
    "/docs/swagger-ui.css",
    "/docs/swagger-ui-bundle.js",
    "/docs/init.js",
];

const CSS: &str = include_str!("../../assets/swagger-ui/swagger-ui.css");
const BUNDLE: &str = include_str!("../../assets/swagger-ui/swagger-ui-bundle.js");

/// Relative URLs, so that the page also works behind a proxy that adds a path prefix.
const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Qhronos API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
"#;

/// `validatorUrl: null`: Swagger UI would otherwise send the document to an online validator.
const INIT: &str = r##"window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
"##;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/docs", get(docs_page))
        .route(ASSETS[0], get(|| asset("text/css; charset=utf-8", CSS)))
        .route(
            ASSETS[1],
            get(|| asset("text/javascript; charset=utf-8", BUNDLE)),
        )
        .route(
            ASSETS[2],
            get(|| asset("text/javascript; charset=utf-8", INIT)),
        )
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
}

/// The API viewer
///
/// An HTML page that shows this document (Swagger UI, served from this server).
#[utoipa::path(
    get,
    path = "/docs",
    tag = "system",
    responses((status = 200, description = "The viewer", content_type = "text/html")),
)]
pub async fn docs_page() -> Html<&'static str> {
    Html(PAGE)
}
