//! `GET /files/licences/{doctorId}`: a doctor's licence PDF, for admins and that doctor.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::HttpState;
use crate::auth::AuthUser;
use crate::doctors;
use crate::error::{AppError, AppResult};

pub async fn licence(
    State(state): State<HttpState>,
    viewer: AuthUser,
    Path(doctor_id): Path<String>,
) -> AppResult<Response> {
    let id =
        Uuid::parse_str(&doctor_id).map_err(|_| AppError::not_found("no doctor has this id"))?;
    let file = doctors::service::licence_file(&state.app, viewer, id).await?;
    Ok((
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
        .into_response())
}
