//! `GET /demo`: a video consultation in the browser, on the public GraphQL API alone. One page
//! with its styles and script inside, so it works on a closed network and needs no build step.

use axum::response::Html;

pub async fn page() -> Html<&'static str> {
    Html(include_str!("demo.html"))
}
