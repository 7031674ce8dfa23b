//! `GET /files/licences/{doctorId}`: a doctor's licence PDF, for admins and that doctor.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::HttpState;
use super::graphql::bearer_token;
use crate::auth::AuthUser;
use crate::doctors;
use crate::error::{AppError, AppResult};
use crate::users;

pub async fn licence(
    State(state): State<HttpState>,
    Path(doctor_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let file = async {
        let viewer = authenticate(&state, &headers).await?;
        let doctor_id = Uuid::parse_str(&doctor_id)
            .map_err(|_| AppError::not_found("no doctor has this id"))?;
        doctors::service::licence_file(&state.app, viewer, doctor_id).await
    };
    match file.await {
        Ok(file) => (
            [
                (header::CONTENT_TYPE, file.content_type),
                (
                    header::CONTENT_DISPOSITION,
                    format!("inline; filename=\"licence-{doctor_id}.pdf\""),
                ),
                (header::CACHE_CONTROL, "private, no-store".to_owned()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            ],
            file.content,
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

async fn authenticate(state: &HttpState, headers: &HeaderMap) -> AppResult<AuthUser> {
    let token = bearer_token(headers)
        .ok_or_else(|| AppError::unauthenticated("send `Authorization: Bearer <access token>`"))?;
    let claims = state.app.tokens.decode_access(&token)?;
    users::service::authenticate(&state.app, &claims).await
}
